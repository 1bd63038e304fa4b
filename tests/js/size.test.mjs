// lilya.js stays small: at most 6 KB once minified (esbuild) and gzipped.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { gzipSync } from "node:zlib";

import { transformSync } from "esbuild";

const LIMIT = 6 * 1024;

test("lilya.js is at most 6 KB minified and gzipped", () => {
  const source = readFileSync(new URL("../../lilya/static/lilya.js", import.meta.url), "utf8");
  const { code } = transformSync(source, { minify: true, format: "esm", target: "es2020" });
  const size = gzipSync(code, { level: 9 }).length;
  console.log(`lilya.js: ${source.length} B source, ${code.length} B minified, ${size} B gzipped`);
  assert.ok(size <= LIMIT, `${size} B > ${LIMIT} B`);
});

test("lilya.js is one module with no imports (nothing to install in the browser)", () => {
  const source = readFileSync(new URL("../../lilya/static/lilya.js", import.meta.url), "utf8");
  assert.doesNotMatch(source, /^\s*import\s/m);
  assert.doesNotMatch(source, /\brequire\(/);
});
