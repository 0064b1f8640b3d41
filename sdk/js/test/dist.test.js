// The committed build (dist/, which the `moment` binary embeds and serves at
// /sdk/moment.js) is exactly what the TypeScript source compiles to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

test("dist/ is what src/ compiles to", (t) => {
  const out = mkdtempSync(join(tmpdir(), "moment-tsc-"));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", root, "--outDir", out], {
    stdio: "inherit",
  });
  const built = readdirSync(out).sort();
  assert.deepEqual(readdirSync(join(root, "dist")).sort(), built);
  for (const file of built) {
    assert.equal(
      readFileSync(join(root, "dist", file), "utf8"),
      readFileSync(join(out, file), "utf8"),
      `dist/${file} is stale: run \`npm run build\` in sdk/js and commit it`,
    );
  }
  const gzipped = gzipSync(readFileSync(join(out, "moment.js")), { level: 9 }).length;
  t.diagnostic(`moment.js: ${gzipped} bytes gzipped`);
  assert.ok(gzipped < 8 * 1024, `the client grew to ${gzipped} bytes gzipped`);
});
