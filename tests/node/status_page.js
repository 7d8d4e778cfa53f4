// Drives Debian's Chromium (playwright-core) through pushkit's status page,
// as a person would, and prints what it saw as one line of JSON:
//   node status_page.js BASE_URL SCREENSHOT_PATH
// It loads the page, reads the group rows, filters, opens a group's
// metrics, deletes the group whose labels contain job="batch-2" with its
// button, reads the rows again, and saves a screenshot.
'use strict';
const { chromium } = require('playwright-core');

const [base, screenshot] = process.argv.slice(2);

const rows = (page) =>
  page.$$eval('#group-rows tr.group', (trs) =>
    trs
      .filter((tr) => !tr.hidden)
      .map((tr) => ({
        labels: tr.dataset.labels,
        failed: tr.classList.contains('failed'),
        lastFailure: tr.cells[2].textContent,
        families: Number(tr.cells[3].textContent),
        series: Number(tr.cells[4].textContent),
      })),
  );

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.PUSHKIT_CHROMIUM || '/usr/bin/chromium',
    // As the machine's notes say: without the background-networking flags
    // Chromium keeps dialling hosts this closed network refuses.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${base}/status`);
    const seen = {
      title: await page.title(),
      summary: await page.textContent('#summary'),
      rows: await rows(page),
      sinks: await page.$$eval('#delivery tr.sink td:first-child', (tds) =>
        tds.map((td) => td.textContent),
      ),
      sinkErrors: await page.$$eval('#delivery tr.sink td:last-child', (tds) =>
        tds.map((td) => td.textContent),
      ),
    };

    await page.fill('#filter', 'batch-1');
    seen.filtered = await rows(page);
    seen.shown = await page.textContent('#shown');
    await page.fill('#filter', '');

    const first = page.locator('#group-rows tr.group', { hasText: 'batch-1' });
    await first.locator('summary').click();
    seen.metricsText = await first.locator('pre').textContent();
    seen.metricsVisible = await first.locator('pre').isVisible();

    const doomed = page.locator('#group-rows tr.group', { hasText: 'batch-2' });
    await Promise.all([
      page.waitForURL(`${base}/status`),
      doomed.locator('button', { hasText: 'Delete' }).click(),
    ]);
    seen.afterDelete = await rows(page);

    await page.screenshot({ path: screenshot, fullPage: true });
    seen.errors = errors;
    console.log(JSON.stringify(seen));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
