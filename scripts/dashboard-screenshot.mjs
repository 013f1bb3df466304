#!/usr/bin/env node
// Screenshot of a running dashboard in headless Chromium (Debian's `chromium`, or R1_CHROMIUM), for the README:
//   node scripts/dashboard-screenshot.mjs http://127.0.0.1:8001/ docs/dashboard.png [width] [height]
// Waits until the charts are drawn (and a chat answer is done, if one is asked with R1_CHAT="question").
import { chromium } from 'playwright-core';

const [url, out, width = '1280', height = '900'] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node scripts/dashboard-screenshot.mjs URL OUT.png [width] [height]');
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: process.env.R1_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: Number(width), height: Number(height) } });
  await page.goto(url);
  await page.waitForFunction(() => window.r1dashboard?.charts.size > 0);
  if (process.env.R1_CHAT) {
    await page.fill('#chat-input', process.env.R1_CHAT);
    await page.click('#chat-form button');
    await page.waitForFunction(() => document.querySelector('.turn.assistant')?.getAttribute('data-done') === 'true', undefined, { timeout: 120_000 });
  }
  await page.screenshot({ path: out, fullPage: process.env.R1_FULL_PAGE === '1' });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
