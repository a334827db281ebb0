// MovieApp web page: plain JavaScript over the JSON API (/openapi.json).
// Views are chosen by the URL hash, so the back button and links work.
"use strict";

const TOKEN_KEY = "movieapp.token";
const main = document.getElementById("main");
const statusLine = document.getElementById("status");

function token() { return sessionStorage.getItem(TOKEN_KEY); }
function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  renderAccountNav();
}

function say(message, isError) {
  statusLine.textContent = message || "";
  statusLine.classList.toggle("error", Boolean(isError));
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && token()) setToken(null);
    const error = new Error((data && data.detail) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return { data, stale: response.headers.get("x-cache") === "stale" };
}

function poster(movie) {
  const fallback = () => el("div", { class: "poster", role: "img", "aria-label": "No poster for " + movie.title }, movie.title);
  if (!movie.posterUrl) return fallback();
  const img = el("img", { class: "poster", src: movie.posterUrl, alt: "Poster of " + movie.title, loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(fallback()));
  return img;
}

function year(movie) { return movie.releaseDate ? movie.releaseDate.slice(0, 4) : "year unknown"; }

function movieCard(movie) {
  return el("li", { class: "card" },
    el("a", { href: "#/movie/" + movie.id, "data-testid": "movie-link" },
      poster(movie), el("h3", {}, movie.title), el("p", {}, year(movie) + " · ★ " + movie.voteAverage.toFixed(1))));
}

function show(...nodes) {
  main.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
}

// A message to announce once the next view has rendered.
let flash = null;
function navigate(hash, message) {
  flash = message;
  if (location.hash === hash) route(); else location.hash = hash;
}

function staleNote(stale) {
  return stale ? el("p", { class: "stale" }, "TMDB is not answering: showing saved data, which may be out of date.") : null;
}

function pager(page, totalPages, hrefFor) {
  return el("nav", { class: "pager", "aria-label": "Pages" },
    page > 1 ? el("a", { href: hrefFor(page - 1) }, "← Previous") : null,
    el("span", {}, `Page ${page} of ${Math.max(totalPages, 1)}`),
    page < totalPages ? el("a", { href: hrefFor(page + 1) }, "Next →") : null);
}

async function viewList(title, path, page, hrefFor) {
  const { data, stale } = await api("GET", path);
  const heading = el("h2", {}, title);
  const list = data.results.length
    ? el("ul", { class: "grid", "data-testid": "results" }, data.results.map(movieCard))
    : el("p", {}, "No movies found.");
  show(heading, staleNote(stale), list, pager(page, data.totalPages, hrefFor));
  say(data.results.length === 1 ? "1 movie shown." : `${data.results.length} movies shown.`);
}

async function viewMovie(id) {
  const { data: movie, stale } = await api("GET", "/api/v1/movies/" + encodeURIComponent(id));
  const facts = [year(movie), movie.runtime ? movie.runtime + " min" : null, movie.genres.join(", ")].filter(Boolean).join(" · ");
  const action = el("p", {});
  const heading = el("h2", { tabindex: "-1" }, movie.title);
  show(staleNote(stale), el("article", { class: "details" },
    poster(movie),
    el("div", {}, heading, movie.tagline ? el("p", {}, el("em", {}, movie.tagline)) : null,
      el("p", {}, facts), el("p", {}, movie.overview), el("p", {}, "Rating ★ " + movie.voteAverage.toFixed(1)), action)));
  heading.focus();
  renderWatchAction(action, movie);
  say("");
}

// Every entry of the caller's watchlist, page after page.
async function watchlistItems() {
  const items = [];
  let cursor = null;
  do {
    const query = "?limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const { data } = await api("GET", "/api/v1/me/watchlist" + query);
    items.push(...data.items);
    cursor = data.nextCursor;
  } while (cursor);
  return items;
}

async function renderWatchAction(container, movie) {
  if (!token()) {
    container.replaceChildren(el("a", { href: "#/account" }, "Log in to add this movie to your watchlist"));
    return;
  }
  let listed = false;
  try {
    listed = (await watchlistItems()).some((item) => item.movieId === movie.id);
  } catch (error) { say(error.message, true); }
  const button = el("button", {
    type: "button", "data-testid": "watch-toggle",
    onclick: async () => {
      try {
        if (listed) await api("DELETE", "/api/v1/me/watchlist/" + movie.id);
        else await api("PUT", "/api/v1/me/watchlist/" + movie.id);
        say(listed ? `Removed “${movie.title}” from your watchlist.` : `Added “${movie.title}” to your watchlist.`);
        renderWatchAction(container, movie);
      } catch (error) { say(error.message, true); }
    },
  }, listed ? "Remove from watchlist" : "Add to watchlist");
  container.replaceChildren(button);
}

async function viewWatchlist() {
  if (!token()) { navigate("#/account", "Log in to see your watchlist."); return; }
  const items = await watchlistItems();
  show(el("h2", {}, "My watchlist"),
    items.length
      ? el("ul", { class: "grid", "data-testid": "watchlist" }, items.map((item) => movieCard(item.movie)))
      : el("p", {}, "Your watchlist is empty. Open a movie and choose “Add to watchlist”."));
  say(items.length === 1 ? "1 movie on your watchlist." : `${items.length} movies on your watchlist.`);
}

function accountForm(kind) {
  const signup = kind === "signup";
  const id = (name) => `${kind}-${name}`;
  const form = el("form", { class: "account", "data-testid": kind + "-form", novalidate: "" },
    el("h2", {}, signup ? "Create an account" : "Log in"),
    el("label", { for: id("email") }, "Email"),
    el("input", { id: id("email"), name: "email", type: "email", autocomplete: "email", required: "" }),
    el("label", { for: id("password") }, "Password" + (signup ? " (at least 10 characters)" : "")),
    el("input", { id: id("password"), name: "password", type: "password", required: "",
      autocomplete: signup ? "new-password" : "current-password", minlength: signup ? "10" : null }),
    signup ? el("label", { for: id("name") }, "Display name (optional)") : null,
    signup ? el("input", { id: id("name"), name: "displayName", autocomplete: "nickname", maxlength: "50" }) : null,
    el("button", { type: "submit" }, signup ? "Sign up" : "Log in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = Object.fromEntries(new FormData(form));
    if (!fields.displayName) delete fields.displayName;
    try {
      // Sign-up answers alike whether or not the address had an account;
      // logging in with the new password tells the person which it was.
      if (signup) await api("POST", "/api/v1/auth/signup", fields);
      const { data } = await api("POST", "/api/v1/auth/login", { email: fields.email, password: fields.password });
      setToken(data.token);
      navigate("#/popular", signup ? "Welcome! Your account is ready." : "You are logged in.");
    } catch (error) { say(error.message, true); }
  });
  return form;
}

async function viewAccount() {
  if (token()) {
    const { data } = await api("GET", "/api/v1/me");
    show(el("h2", {}, "My account"), el("p", { "data-testid": "profile" }, `${data.displayName} <${data.email}>`));
    return;
  }
  show(accountForm("login"), accountForm("signup"));
  say("");
}

async function renderAccountNav() {
  const nav = document.getElementById("account-nav");
  if (!token()) { nav.replaceChildren(el("a", { href: "#/account" }, "Log in / Sign up")); return; }
  nav.replaceChildren(el("a", { href: "#/account" }, "My account"), " ",
    el("button", { type: "button", onclick: () => { setToken(null); navigate("#/popular", "You are logged out."); } }, "Log out"));
}

async function route() {
  await render();
  if (flash) { say(flash); flash = null; }
}

async function render() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const page = Math.min(Math.max(parseInt(params.get("page") || "1", 10) || 1, 1), 500);
  try {
    if (path.startsWith("/movie/")) return await viewMovie(path.slice(7));
    if (path === "/search" && params.get("q")) {
      const q = params.get("q");
      document.getElementById("search-input").value = q;
      return await viewList(`Results for “${q}”`, `/api/v1/movies/search?query=${encodeURIComponent(q)}&page=${page}`, page,
        (p) => `#/search?q=${encodeURIComponent(q)}&page=${p}`);
    }
    if (path === "/watchlist") return await viewWatchlist();
    if (path === "/account") return await viewAccount();
    return await viewList("Popular movies", `/api/v1/movies/popular?page=${page}`, page, (p) => `#/popular?page=${p}`);
  } catch (error) {
    flash = null;
    show(el("h2", {}, "Something went wrong"), el("p", {}, error.message));
    say(error.message, true);
  }
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = document.getElementById("search-input").value.trim();
  if (q) location.hash = `#/search?q=${encodeURIComponent(q)}`;
});
window.addEventListener("hashchange", route);
renderAccountNav();
route();
