// Consent takes a moment to reach Microsoft's token service: submit the retry form by itself.
const section = document.querySelector('[data-retry-seconds]');
const form = document.getElementById('retry-form');
if (section && form) {
  const seconds = Number(section.getAttribute('data-retry-seconds')) || 20;
  setTimeout(() => form.submit(), seconds * 1000);
}
