/**
 * HTML of the emulator's browser pages: sign-in, account picker, consent,
 * approval required, errors, form_post and sign-out. Every interpolated value
 * goes through `escapeHtml`; the only script is the form_post auto-submit.
 */

export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `
*{box-sizing:border-box}
body{margin:0;min-height:100vh;font-family:"Segoe UI","Segoe UI Web",-apple-system,BlinkMacSystemFont,Roboto,"Helvetica Neue",Arial,sans-serif;
  background:#f2f2f2 linear-gradient(135deg,#eef3f8 0%,#f2f2f2 60%);color:#1b1b1b;display:flex;flex-direction:column;align-items:center}
main{width:100%;max-width:440px;margin:12vh 16px 24px;background:#fff;box-shadow:0 2px 6px rgba(0,0,0,.2);padding:44px}
.brand{display:flex;align-items:center;gap:8px;font-size:15px;font-weight:600;color:#5e5e5e;margin-bottom:16px}
.mark{width:20px;height:20px;background:#0067b8;color:#fff;font-size:12px;font-weight:700;display:inline-flex;align-items:center;justify-content:center}
h1{font-size:24px;font-weight:600;margin:0 0 12px;line-height:1.3}
p{font-size:15px;line-height:1.45;margin:0 0 12px}
.muted{color:#5e5e5e;font-size:13px}
.app{font-weight:600}
label{display:block;font-size:13px;color:#5e5e5e;margin-top:12px}
input[type=text],input[type=email],input[type=password]{width:100%;font:inherit;font-size:15px;padding:6px 0;border:0;border-bottom:1px solid #666;outline:none;background:transparent}
input:focus{border-bottom-color:#0067b8}
.error{color:#e81123;font-size:15px;margin:8px 0 4px}
.actions{display:flex;justify-content:flex-end;gap:8px;margin-top:24px}
button{font:inherit;font-size:15px;min-width:108px;padding:6px 12px;border:1px solid transparent;cursor:pointer}
.primary{background:#0067b8;color:#fff}
.primary:hover{background:#005da6}
.secondary{background:#ccc;color:#000}
.secondary:hover{background:#bbb}
ul.perms{list-style:none;padding:0;margin:8px 0 16px;border-top:1px solid #e6e6e6}
ul.perms li{padding:10px 0;border-bottom:1px solid #e6e6e6;font-size:15px}
ul.perms small{display:block;color:#5e5e5e;font-size:12px;margin-top:2px}
.tiles{list-style:none;padding:0;margin:8px 0 0}
.tiles button{width:100%;text-align:left;background:#fff;border:0;border-bottom:1px solid #e6e6e6;padding:12px 8px;display:flex;flex-direction:column}
.tiles button:hover{background:#f2f2f2}
.tiles .name{font-weight:600}
.tiles .upn{color:#5e5e5e;font-size:13px}
.who{font-size:15px;margin:0 0 16px;color:#1b1b1b}
code{font-family:Consolas,"Courier New",monospace;font-size:13px;word-break:break-all}
.details{background:#f2f2f2;padding:12px;font-size:13px;margin-top:16px}
footer{font-size:12px;color:#5e5e5e;margin:8px 16px 24px}
`;

function layout(title: string, body: string, extraHead = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style>${extraHead}</head>
<body><main>
<div class="brand"><span class="mark" aria-hidden="true">E</span>Entra ID emulator</div>
${body}
</main><footer>Offline emulator of Microsoft Entra ID for development and tests. Not a Microsoft service.</footer></body></html>`;
}

function hidden(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('');
}

export interface SignInView {
  action: string;
  txn: string;
  appName: string;
  username?: string;
  error?: string;
  /** A line under the heading, e.g. that admin consent needs an administrator. */
  note?: string;
}

export function signInPage(view: SignInView): string {
  return layout(
    'Sign in to your account',
    `<h1>Sign in</h1>
<p class="muted">to continue to <span class="app">${escapeHtml(view.appName)}</span></p>
${view.note ? `<p>${escapeHtml(view.note)}</p>` : ''}
<form method="post" action="${escapeHtml(view.action)}" autocomplete="off">
${hidden({ txn: view.txn, step: 'login' })}
${view.error ? `<p class="error" role="alert">${escapeHtml(view.error)}</p>` : ''}
<label for="username">Email, phone, or Skype</label>
<input id="username" name="username" type="email" required value="${escapeHtml(view.username ?? '')}" placeholder="someone@example.com"${view.username ? '' : ' autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" required placeholder="Password"${view.username ? ' autofocus' : ''}>
<div class="actions"><button class="primary" type="submit" id="idSIButton9">Sign in</button></div>
</form>`,
  );
}

export interface AccountTile {
  value: string;
  name: string;
  upn: string;
}

function accountTiles(accounts: AccountTile[]): string {
  return accounts
    .map((a) => `<li><button type="submit" name="account" value="${escapeHtml(a.value)}"><span class="name">${escapeHtml(a.name)}</span><span class="upn">${escapeHtml(a.upn)}</span></button></li>`)
    .join('');
}

export function accountPickerPage(view: { action: string; txn: string; appName: string; accounts: AccountTile[]; heading?: string }): string {
  const tiles = accountTiles(view.accounts);
  return layout(
    'Pick an account',
    `<h1>${escapeHtml(view.heading ?? 'Pick an account')}</h1>
<p class="muted">to continue to <span class="app">${escapeHtml(view.appName)}</span></p>
<form method="post" action="${escapeHtml(view.action)}">
${hidden({ txn: view.txn, step: 'pick' })}
<ul class="tiles">${tiles}<li><button type="submit" name="account" value="other"><span class="name">Use another account</span></button></li></ul>
</form>`,
  );
}

export interface PermissionLine {
  value: string;
  label: string;
}

export function consentPage(view: {
  action: string;
  txn: string;
  appName: string;
  upn: string;
  permissions: PermissionLine[];
  /** Admin consent for the whole organisation (application permissions). */
  forOrganization: boolean;
  tenantName: string;
}): string {
  const perms = view.permissions.map((p) => `<li>${escapeHtml(p.label)}<small>${escapeHtml(p.value)}</small></li>`).join('');
  const intro = view.forOrganization
    ? `<p><span class="app">${escapeHtml(view.appName)}</span></p><p>This app would like to:</p>`
    : `<p><span class="app">${escapeHtml(view.appName)}</span> would like to:</p>`;
  const note = view.forOrganization
    ? `<p class="muted">If you accept, this app will get access to the specified resources for all users in ${escapeHtml(view.tenantName)}. Nobody else will be prompted to review these permissions.</p>`
    : `<p class="muted">Accepting these permissions means that you allow this app to use your data as specified.</p>`;
  return layout(
    'Permissions requested',
    `<p class="who">${escapeHtml(view.upn)}</p>
<h1>Permissions requested</h1>
${view.forOrganization ? `<p class="muted">Review for your organization</p>` : ''}
${intro}
<ul class="perms">${perms}</ul>
${note}
<form method="post" action="${escapeHtml(view.action)}">
${hidden({ txn: view.txn, step: 'consent' })}
<div class="actions"><button class="secondary" type="submit" name="decision" value="cancel">Cancel</button><button class="primary" type="submit" name="decision" value="accept" id="idBtn_Accept">Accept</button></div>
</form>`,
  );
}

export function approvalRequiredPage(view: { action: string; txn: string; appName: string; upn: string; permissions: PermissionLine[] }): string {
  const perms = view.permissions.map((p) => `<li>${escapeHtml(p.label)}<small>${escapeHtml(p.value)}</small></li>`).join('');
  return layout(
    'Need admin approval',
    `<p class="who">${escapeHtml(view.upn)}</p>
<h1>Need admin approval</h1>
<p><span class="app">${escapeHtml(view.appName)}</span> needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.</p>
<ul class="perms">${perms}</ul>
<form method="post" action="${escapeHtml(view.action)}">
${hidden({ txn: view.txn, step: 'approval' })}
<div class="actions"><button class="primary" type="submit" name="decision" value="return">Return to the application without consenting</button></div>
</form>`,
  );
}

export function errorPage(view: { title?: string; description: string; code: number }): string {
  return layout(
    'Sign in error',
    `<h1>${escapeHtml(view.title ?? "Sorry, but we're having trouble signing you in.")}</h1>
<p>AADSTS${escapeHtml(view.code)}: ${escapeHtml(view.description)}</p>
<div class="details"><strong>Troubleshooting details</strong><br>Error code: ${escapeHtml(view.code)}<br>Timestamp: ${escapeHtml(new Date().toISOString())}</div>`,
  );
}

/** `response_mode=form_post`: the browser posts the result to the app. */
export function formPostPage(redirectUri: string, params: Record<string, string>): string {
  return layout(
    'Working...',
    `<h1>Returning to the application</h1>
<form method="post" action="${escapeHtml(redirectUri)}">${hidden(params)}
<noscript><p>Script is disabled. Select Continue.</p></noscript>
<div class="actions"><button class="primary" type="submit">Continue</button></div></form>
<script>document.forms[0].submit()</script>`,
  );
}

export function signedOutPage(): string {
  return layout(
    'Signed out',
    `<h1>You signed out of your account</h1><p>It's a good idea to close all browser windows.</p>`,
  );
}

export function logoutPickerPage(view: { action: string; accounts: AccountTile[]; fields: Record<string, string> }): string {
  const tiles = accountTiles(view.accounts);
  return layout(
    'Sign out',
    `<h1>Pick an account</h1><p>Which account do you want to sign out of?</p>
<form method="post" action="${escapeHtml(view.action)}">${hidden(view.fields)}
<ul class="tiles">${tiles}</ul></form>`,
  );
}

/** The device code flow's first page: where a person types the code their terminal shows. */
export function deviceCodeEntryPage(view: { action: string; error?: string }): string {
  return layout(
    'Enter code',
    `<h1>Enter code</h1>
<p>Enter the code displayed on your app or device.</p>
<form method="post" action="${escapeHtml(view.action)}" autocomplete="off">
${view.error ? `<p class="error" role="alert">${escapeHtml(view.error)}</p>` : ''}
<label for="otc">Code</label>
<input id="otc" name="otc" type="text" required autofocus placeholder="Code">
<div class="actions"><button class="primary" type="submit" id="idSIButton9">Next</button></div>
</form>`,
  );
}

/** The device code flow's last page: the terminal has what it asked for (or was refused). */
export function deviceCodeDonePage(view: { appName: string; approved: boolean }): string {
  return layout(
    view.approved ? 'Signed in' : 'Sign-in cancelled',
    view.approved
      ? `<h1>${escapeHtml(view.appName)}</h1><p>You have signed in to the ${escapeHtml(view.appName)} application on your device. You may now close this window.</p>`
      : `<h1>Sign-in cancelled</h1><p>The ${escapeHtml(view.appName)} application on your device was not signed in. You may now close this window.</p>`,
  );
}
