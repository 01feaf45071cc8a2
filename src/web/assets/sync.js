// Live sync progress: the server streams snapshots of the tenant's sync; the
// page shows them and reloads once when a run ends so the history is current.
(() => {
  const live = document.getElementById('sync-live');
  if (!live || typeof EventSource === 'undefined') return;
  const phase = document.getElementById('sync-phase');
  const bar = document.getElementById('sync-progress');
  const counts = document.getElementById('sync-counts');
  const buttons = live.querySelectorAll('form button');
  const number = new Intl.NumberFormat('en-GB');
  let state = live.dataset.state;

  const source = new EventSource(live.dataset.events);
  // The stream ends with the session; reconnecting would only meet the sign-in page.
  source.addEventListener('signed-out', () => {
    source.close();
    for (const button of buttons) button.disabled = true;
    phase.textContent = 'Your session has ended. Reload the page to sign in again.';
  });
  source.addEventListener('sync', (event) => {
    const snapshot = JSON.parse(event.data);
    const wasBusy = state === 'running' || state === 'queued';
    state = snapshot.state;
    live.dataset.state = state;
    const busy = state === 'running' || state === 'queued';
    for (const button of buttons) button.disabled = busy;
    bar.hidden = !busy;
    if (snapshot.run) {
      counts.hidden = false;
      for (const key of ['pages', 'created', 'updated', 'deleted']) counts.querySelector(`[data-count="${key}"]`).textContent = number.format(snapshot.run[key]);
    }
    if (state === 'running') {
      const kind = snapshot.run.kind === 'full' ? 'Full sync' : 'Incremental sync';
      const { pages, users } = snapshot.run;
      phase.textContent = `${kind} running: ${number.format(pages)} ${pages === 1 ? 'page' : 'pages'}, ${number.format(users)} ${users === 1 ? 'user' : 'users'} read`;
      // Only a tenant synced before has a known size; a first sync's local rows are just who signed in.
      if (snapshot.expected && snapshot.lastSuccessAt !== null) {
        bar.max = snapshot.expected;
        bar.value = Math.min(snapshot.run.users, snapshot.expected);
      } else {
        bar.removeAttribute('value');
      }
    } else if (state === 'queued') {
      phase.textContent = 'Sync requested; waiting for the sync daemon to start it.';
      bar.removeAttribute('value');
    } else if (wasBusy) {
      source.close();
      phase.textContent = 'Sync finished. Updating…';
      window.location.reload();
    }
  });
})();
