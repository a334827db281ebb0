// The web page as a person uses it: browse, search, open a movie, sign up,
// add it to the watchlist, see it there. Fails (exit 1) on any step.
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.NODE_PATH, "noop.js"));
const { chromium } = require("playwright-core");

const appUrl = process.env.APP_URL;
const artifacts = process.env.ARTIFACTS;
const timeout = 15_000;

function step(name) { console.log(`-- ${name}`); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(timeout);
const pageErrors = [];
page.on("pageerror", (error) => pageErrors.push(error.message));

let failed = false;
try {
  step("popular movies are listed");
  await page.goto(appUrl);
  await page.locator("[data-testid=results] li").first().waitFor();
  const count = await page.locator("[data-testid=results] li").count();
  if (count !== 20) throw new Error(`expected 20 popular movies, saw ${count}`);

  step("search finds The Matrix");
  await page.getByLabel("Search movies").fill("matrix");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("heading", { name: "Results for “matrix”" }).waitFor();
  const match = page.locator("[data-testid=movie-link]", { hasText: "The Matrix" }).first();
  await match.waitFor();

  step("the details page opens");
  await match.click();
  await page.getByRole("heading", { name: "The Matrix", exact: true }).waitFor();
  await page.getByText("1999 · 136 min").waitFor();
  await page.screenshot({ path: join(artifacts, "browser-details.png"), fullPage: true });

  step("sign up");
  await page.getByRole("link", { name: /Log in to add this movie/ }).click();
  const email = `browser-${Date.now()}@example.com`;
  await page.locator("#signup-email").fill(email);
  await page.locator("#signup-password").fill("a long browser password");
  await page.locator("#signup-name").fill("Browser Tester");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByText("Welcome! Your account is ready.").waitFor();
  await page.getByRole("button", { name: "Log out" }).waitFor();

  step("add to the watchlist");
  await page.goto(`${appUrl}/#/movie/603`);
  await page.getByRole("button", { name: "Add to watchlist" }).click();
  await page.getByText("Added “The Matrix” to your watchlist.").waitFor();
  await page.getByRole("button", { name: "Remove from watchlist" }).waitFor();

  step("the watchlist shows it");
  await page.getByRole("link", { name: "My watchlist" }).click();
  await page.locator("[data-testid=watchlist]", { hasText: "The Matrix" }).waitFor();
  await page.screenshot({ path: join(artifacts, "browser-watchlist.png"), fullPage: true });

  step("accessibility basics: labelled inputs, images with text");
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input")].filter((i) => !i.labels || i.labels.length === 0).map((i) => i.id || i.name));
  if (unlabelled.length) throw new Error(`inputs without a label: ${unlabelled.join(", ")}`);
  const bareImages = await page.evaluate(() =>
    [...document.querySelectorAll("img")].filter((i) => !i.alt).length);
  if (bareImages) throw new Error(`${bareImages} images without alt text`);

  if (pageErrors.length) throw new Error(`script errors on the page: ${pageErrors.join("; ")}`);
  console.log("browser test passed; screenshots in " + artifacts);
} catch (error) {
  failed = true;
  console.error(`browser test FAILED: ${error.message}`);
  await page.screenshot({ path: join(artifacts, "browser-failure.png"), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
