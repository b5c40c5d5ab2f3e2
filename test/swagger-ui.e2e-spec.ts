import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrowserContext, chromium } from 'playwright-core';
import { getJson, ownGateway } from './support/gateway';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// One gateway for the file: each boot and shutdown costs seconds.
const own = ownGateway();

describe('OpenAPI document at /docs-json', () => {

  it('describes every endpoint with its responses, the errors included, and a request schema where there is a body', async () => {
    const { status, body: doc } = await getJson(`${own.gw.url}/docs-json`);
    expect(status).toBe(200);
    const operations = Object.entries<Record<string, any>>(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));
    expect(operations.map((o) => `${o.method.toUpperCase()} ${o.path}`)).toEqual(
      expect.arrayContaining([
        'POST /infer',
        'GET /health',
        'GET /health/live',
        'GET /health/ready',
        'GET /metrics',
        'GET /models',
        'POST /models',
        'GET /models/{id}',
        'DELETE /models/{id}',
        'POST /models/{id}/reload',
      ]),
    );
    // Every operation, whoever added it, documents what it answers on success.
    const undocumented = operations.filter(({ op }) => !Object.entries<any>(op.responses).some(([s, r]) => s.startsWith('2') && r.content));
    expect(undocumented.map((o) => `${o.method.toUpperCase()} ${o.path}`)).toEqual([]);
    const infer = doc.paths['/infer'].post;
    expect(Object.keys(infer.responses)).toEqual(['200', '400', '404', '413', '415', '422', '429', '503', '504']);
    expect(infer.responses['422'].content['application/json'].schema.$ref).toBe('#/components/schemas/ErrorResponseDto');
    expect(infer.requestBody.content['application/json'].schema.$ref).toBe('#/components/schemas/InferRequestDto');
    expect(doc.components.schemas.InferRequestDto.properties.payload.example.input).toHaveLength(128);
    for (const path of ['/models', '/models/{id}/reload']) expect(doc.paths[path].post.requestBody).toBeDefined();
    expect(doc.paths['/health/ready'].get.responses['503']).toBeDefined();
  });
});

describe('Swagger UI at /docs, in headless Chromium', () => {
  let profile: string;
  let browser: BrowserContext;

  beforeAll(async () => {
    profile = mkdtempSync(join(tmpdir(), 'bales-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  it('lists the endpoints and runs the /infer example through "Try it out" to a 200', async () => {
    const page = await browser.newPage();
    await page.goto(`${own.gw.url}/docs`);
    await page.waitForSelector('.opblock');
    const listed = await page.$$eval('.opblock', (blocks) =>
      blocks.map((b) => `${b.querySelector('.opblock-summary-method')?.textContent} ${b.querySelector('.opblock-summary-path')?.textContent?.replace(/\u200b/g, '')}`),
    );
    expect(listed).toEqual(expect.arrayContaining(['POST /infer', 'GET /health', 'GET /health/live', 'GET /health/ready', 'GET /metrics', 'GET /models', 'POST /models/{id}/reload']));

    const infer = page.locator('.opblock-post', { has: page.locator('.opblock-summary-path', { hasText: /^\/infer$/ }) });
    await infer.locator('.opblock-summary').click();
    await infer.getByRole('button', { name: 'Try it out' }).click();
    const example = JSON.parse(await infer.locator('textarea.body-param__text').inputValue());
    expect(example.payload.input).toHaveLength(128);
    await infer.getByRole('button', { name: 'Execute' }).click();
    const status = infer.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor();
    expect((await status.textContent())?.trim()).toBe('200');
    const body = await infer.locator('.live-responses-table .response-col_description pre').first().textContent();
    expect(JSON.parse(body!)).toMatchObject({ model_id: 'stub_v1', batch_size: expect.any(Number), result: { label: expect.any(Number) } });
  });
});
