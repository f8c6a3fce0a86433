// Checks rendered Kubernetes objects (multi-document YAML files named on the command line) two ways:
//  1. each object's kubernetes-models class validates it against the JSON schema of its kind (types,
//     enums, required fields, formats), built-in kinds and the Prometheus Operator's and KEDA's alike;
//  2. each object, written as a TypeScript literal of its kind's interface, is type-checked by tsc: an
//     excess-property error is a field the kind does not have (the schemas alone let unknown fields by).
// Prints one line per problem, "FILE #N KIND/NAME: problem", and exits 1 if there was any.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));

/** The module that holds the models of an apiVersion. */
function moduleOf(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  if (apiVersion.startsWith("keda.sh/")) return `@kubernetes-models/keda/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

const objects = [];
for (const file of process.argv.slice(2)) {
  parseAllDocuments(readFileSync(file, "utf8")).forEach((doc, index) => {
    if (doc.errors.length) throw new Error(`${file} #${index}: ${doc.errors[0].message}`);
    const object = doc.toJS();
    if (object) objects.push({ id: `${file} #${index} ${object.kind}/${object.metadata?.name}`, object });
  });
}

const problems = [];
for (const { id, object } of objects) {
  let models;
  try {
    models = await import(moduleOf(object.apiVersion));
  } catch {
    problems.push(`${id}: no schema for apiVersion ${object.apiVersion}`);
    continue;
  }
  const Kind = models[object.kind];
  if (!Kind) {
    problems.push(`${id}: no schema for kind ${object.kind} in ${object.apiVersion}`);
    continue;
  }
  try {
    new Kind(object).validate();
  } catch (e) {
    problems.push(`${id}: ${e.message.replace(/\s+/g, " ")}`);
  }
}

// One line per object, so that tsc's line numbers name the object.
const lines = objects.map(({ object }, i) =>
  `const o${i}: import("${moduleOf(object.apiVersion)}").I${object.kind} = ${JSON.stringify(object)};`);
const work = mkdtempSync(join(here, ".check-"));
try {
  writeFileSync(join(work, "objects.mts"), lines.join("\n") + "\nexport {};\n");
  writeFileSync(join(work, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", skipLibCheck: true, types: [] },
    files: ["objects.mts"],
  }));
  try {
    execFileSync(join(here, "node_modules", ".bin", "tsc"), ["-p", work], { encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    const output = `${e.stdout ?? ""}${e.stderr ?? ""}`;
    const located = [...output.matchAll(/objects\.mts\((\d+),\d+\): error (TS\d+: .*)/g)];
    if (located.length === 0) problems.push(`tsc failed: ${output.slice(0, 2000)}`);
    for (const [, line, message] of located) {
      const index = Number(line) - 1;
      problems.push(`${objects[index]?.id ?? `line ${line}`}: ${message.replace(/\s+/g, " ").slice(0, 400)}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

for (const p of problems) console.log(p);
console.log(`${objects.length} objects checked, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
