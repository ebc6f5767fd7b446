// Loaded with `node --import` into a process under test (through NODE_OPTIONS): appends to the file
// RECORD_PACKAGES_FILE names one line "<pid> <package>" for each npm package the process loads, by
// import or require, the first time it loads it. test/lazy-cloud-sdks.test.ts reads it.
import { appendFileSync } from "node:fs";
import { registerHooks } from "node:module";

const file = process.env.RECORD_PACKAGES_FILE;
if (file) {
  const seen = new Set<string>();
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      // The innermost package: `…/node_modules/a/node_modules/@b/c/x.js` is @b/c.
      const names = [...resolved.url.matchAll(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//g)];
      const name = names.at(-1)?.[1];
      if (name && !seen.has(name)) {
        seen.add(name);
        appendFileSync(file, `${process.pid} ${name}\n`);
      }
      return resolved;
    },
  });
}
