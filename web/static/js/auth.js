// Signing in: when the API answers 401 the page asks for an API key, keeps it in sessionStorage
// (gone when the tab closes) and sends it as the Bearer header. "Sign out" forgets it.

const STORE_KEY = "imgjobs.key";
const $ = (id) => document.getElementById(id);

let waiting = null; // the sign-in in progress, shared by every call that met a 401

/** The key of this tab, or "" when none is kept. */
export function key() {
  try {
    return window.sessionStorage.getItem(STORE_KEY) || "";
  } catch (_) {
    return "";
  }
}

/** The Authorization header for API calls, when a key is kept. */
export function headers() {
  const kept = key();
  return kept ? { Authorization: `Bearer ${kept}` } : {};
}

function keep(value) {
  try {
    if (value) window.sessionStorage.setItem(STORE_KEY, value);
    else window.sessionStorage.removeItem(STORE_KEY);
  } catch (_) {
    // storage disabled: the key lives only as long as this page
  }
  $("account").hidden = !value;
}

/** After a 401: forget a refused key and resolve once the user has given one. */
export function signIn() {
  if (!waiting) {
    const refused = Boolean(key());
    keep("");
    waiting = ask(refused ? "That API key was not accepted. Check it and try again." : "")
      .finally(() => { waiting = null; });
  }
  return waiting;
}

function ask(message) {
  const form = $("sign-in");
  const input = $("api-key");
  $("sign-in-error").textContent = message;
  form.hidden = false;
  input.value = "";
  input.focus();
  return new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) {
        $("sign-in-error").textContent = "Enter an API key.";
        return;
      }
      form.removeEventListener("submit", submit);
      form.hidden = true;
      keep(value);
      resolve();
    };
    form.addEventListener("submit", submit);
  });
}

function signOut() {
  keep("");
  window.location.reload(); // start over: the next API call asks for a key
}

$("sign-out").addEventListener("click", signOut);
$("account").hidden = !key();
