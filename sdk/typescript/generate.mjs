// Generates the TypeScript types of Weir's API (generated/weir.ts) from openapi/openapi.json with
// openapi-typescript; openapi-fetch calls the API through them. Any warning fails the run.
//
// Usage: node generate.mjs [path/to/openapi.json] [output.ts]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const source = path.resolve(process.argv[2] ?? path.join(here, "../../openapi/openapi.json"));
const output = path.resolve(process.argv[3] ?? path.join(here, "generated/weir.ts"));

const warnings = [];
console.warn = (...args) => warnings.push(args.join(" "));

// Raw bodies (`format: binary`) are bytes, not text.
const BYTES = ts.factory.createUnionTypeNode([
  ts.factory.createTypeReferenceNode("Blob"),
  ts.factory.createTypeReferenceNode("Uint8Array"),
]);

const ast = await openapiTS(fs.readFileSync(source, "utf8"), {
  transform(schema) {
    if (schema.format === "binary") return BYTES;
    return undefined;
  },
});
fs.mkdirSync(path.dirname(output), { recursive: true });
fs.writeFileSync(output, astToString(ast));
if (warnings.length > 0) {
  console.error(`openapi-typescript warned:\n${warnings.join("\n")}`);
  process.exit(1);
}
console.log(`generated ${path.relative(process.cwd(), output)}`);
