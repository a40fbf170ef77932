// Validates every keda.sh object in rendered manifests against KEDA's schema
// (@kubernetes-models/keda, generated from KEDA's Go API types), offline.
//
//   node validate-keda.mjs RENDERED.yaml...      (exit 1 on any error)
//   node validate-keda.mjs --self-test RENDERED.yaml...
//
// The generated validators check types and required fields but let unknown
// fields through; a typo such as `minReplicas` would then be silently ignored
// by KEDA. So this also walks each object against the property names in the
// package's type declarations and rejects fields KEDA does not know.
import { readFileSync, existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const kedaTypes = join(modules, "@kubernetes-models/keda/keda.sh/v1alpha1");

// Documented metadata of KEDA's rabbitmq scaler: metadata is a free string map
// to the schema, so a misspelt key would pass it and be ignored by KEDA.
const RABBITMQ_METADATA = new Set([
  "host", "hostFromEnv", "protocol", "mode", "value", "activationValue", "queueName", "vhostName",
  "usernameFromEnv", "passwordFromEnv", "unsafeSsl", "timeout", "useRegex", "pageSize", "operation",
  "excludeUnacknowledged",
]);

// Property name -> type name, and type name -> declaration file, of one .d.ts.
const declarations = new Map();
function declaration(file) {
  if (!declarations.has(file)) {
    const text = readFileSync(file, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
      const spec = m[2];
      const base = spec.startsWith(".") ? join(dirname(file), spec) : join(modules, spec);
      imports.set(m[1], base.replace(/\.js$/, "") + ".d.ts");
    }
    // `export type IX = IY;` aliases another declaration.
    const alias = text.match(/export type \w+ = (I\w+);/);
    if (alias && imports.has(alias[1]) && !/export interface/.test(text)) {
      declarations.set(file, declaration(imports.get(alias[1])));
      return declarations.get(file);
    }
    const body = text.match(/export interface \w+[^{]*\{([\s\S]*?)\n\}/);
    const props = new Map();
    for (const m of (body ? body[1] : "").matchAll(/^ {4}"([^"]+)"\??: ([^;\n]+)/gm)) {
      const type = m[2].match(/^(?:Array<)?(I\w+)>?$/);
      props.set(m[1], type && imports.has(type[1]) ? imports.get(type[1]) : null);
    }
    declarations.set(file, props);
  }
  return declarations.get(file);
}

function unknownFields(value, file, path, errors) {
  if (value === null || typeof value !== "object" || !existsSync(file)) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, file, `${path}/${i}`, errors));
    return;
  }
  const props = declaration(file);
  if (props.size === 0) return; // a map type or an unparsed declaration
  for (const [key, v] of Object.entries(value)) {
    if (!props.has(key)) errors.push(`${path}/${key}: unknown field (not in KEDA's API)`);
    else if (props.get(key)) unknownFields(v, props.get(key), `${path}/${key}`, errors);
  }
}

export function validate(doc) {
  const Model = keda[doc.kind];
  if (!Model) return [`unknown KEDA kind ${doc.kind}`];
  const errors = [];
  try {
    new Model(doc).validate();
  } catch (e) {
    errors.push(...String(e.message).split("\n"));
  }
  unknownFields(doc.spec, join(kedaTypes, `${doc.kind}Spec.d.ts`), "spec", errors);
  for (const [i, t] of (doc.spec?.triggers ?? []).entries()) {
    if (t.type !== "rabbitmq") continue;
    for (const key of Object.keys(t.metadata ?? {})) {
      if (!RABBITMQ_METADATA.has(key)) errors.push(`spec/triggers/${i}/metadata/${key}: not a rabbitmq scaler parameter`);
    }
  }
  return errors;
}

function kedaObjects(files) {
  const objects = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
      const obj = doc.toJS();
      if (obj?.apiVersion?.startsWith("keda.sh/")) objects.push({ file, obj });
    }
  }
  return objects;
}

const args = process.argv.slice(2);
const selfTest = args.includes("--self-test");
const files = args.filter((a) => a !== "--self-test");
const objects = kedaObjects(files);
let passed = 0;
let failed = 0;

for (const { file, obj } of objects) {
  const errors = validate(obj);
  const name = `${basename(file, ".yaml")}: ${obj.kind}/${obj.metadata?.name}`;
  if (errors.length) {
    failed++;
    console.log(`  FAIL  ${name}`);
    for (const e of errors) console.log(`        ${e}`);
  } else {
    passed++;
    console.log(`  ok    ${name}`);
  }
}
if (objects.length === 0) {
  failed++;
  console.log("  FAIL  no keda.sh objects found: is the worker-autoscaling component included?");
}

if (selfTest) {
  // Each mutation of a valid ScaledObject must be rejected.
  const so = objects.find((o) => o.obj.kind === "ScaledObject")?.obj;
  const mutations = {
    "minReplicaCount as a string": (o) => { o.spec.minReplicaCount = "0"; },
    "a missing scaleTargetRef": (o) => { delete o.spec.scaleTargetRef; },
    "a trigger without a type": (o) => { delete o.spec.triggers[0].type; },
    "a misspelt spec field": (o) => { o.spec.minReplicas = 0; },
    "a misspelt rabbitmq parameter": (o) => { o.spec.triggers[0].metadata.queuName = "easel.jobs"; },
    "a numeric metadata value": (o) => { o.spec.triggers[0].metadata.value = 600; },
    "a misspelt HPA behavior field": (o) => {
      o.spec.advanced = { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilisationWindowSeconds: 1 } } } };
    },
  };
  for (const [what, mutate] of Object.entries(mutations)) {
    if (!so) break;
    const copy = structuredClone(so);
    mutate(copy);
    const errors = validate(copy);
    if (errors.length) {
      passed++;
      console.log(`  ok    self-test: ${what} rejected (${errors[0]})`);
    } else {
      failed++;
      console.log(`  MISSED self-test: ${what} was accepted`);
    }
  }
}

console.log(`keda-schema: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
