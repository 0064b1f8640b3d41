// Starts the real `moment serve --demo` on port 0 for a test, on a fresh data
// directory, and reads its address and the demo keys from its banner.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The `moment` binary: $MOMENT_BIN, else the debug build `cargo build` leaves. */
export function momentBinary() {
  const bin = process.env.MOMENT_BIN ?? join(here, "../../../target/debug/moment");
  if (!existsSync(bin)) {
    throw new Error(`no moment binary at ${bin}: run \`cargo build\` first, or set MOMENT_BIN`);
  }
  return bin;
}

/** A running demo server: { base, keys: {admin, editor, decide}, stop() }. */
export async function startServer() {
  const data = mkdtempSync(join(tmpdir(), "moment-js-"));
  const child = spawn(momentBinary(), ["serve", "--demo", "--listen", "127.0.0.1:0", "--data", data], {
    env: { ...process.env, MOMENT_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const banner = {};
  let base;
  for await (const line of lines) {
    const listening = line.match(/^moment listening on (http:\/\/\S+)/);
    if (listening) base = listening[1];
    const key = line.match(/^\s+(admin|editor|decide):\s+(\S+)/);
    if (key) banner[key[1]] = key[2];
    if (base && banner.admin && banner.editor && banner.decide) break;
  }
  if (!base) throw new Error("moment exited before it listened");
  // Keep reading so the server never blocks on a full pipe.
  lines.on("line", () => {});
  let stopped = false;
  return {
    base,
    keys: banner,
    /** Kills the server (SIGKILL) and removes its data. */
    stop() {
      if (stopped) return;
      stopped = true;
      child.kill("SIGKILL");
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Calls the server's API as `key`; resolves the parsed JSON, rejects on an error status. */
export async function api(server, method, path, key, body) {
  const response = await fetch(`${server.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Waits until `check()` is truthy, polling; fails after `ms`. */
export async function eventually(check, ms = 5000) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
