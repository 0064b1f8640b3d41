// Writes missing-vs-null.json: every condition operator on a missing
// attribute, a null one and present ones, with the answers of GrowthBook's
// own JavaScript SDK. Run it where the SDK is installed:
//
//   npm install @growthbook/growthbook@1.8.0
//   node missing-vs-null.mjs > missing-vs-null.json
//
// Each case has the shape of the `evalCondition` section of
// growthbook-cases.json: [name, condition, attributes, expected, groups?].

import { evalCondition } from "@growthbook/growthbook";

const groups = { vip: ["a", 1] };

// One condition per line, on the attribute `x` unless it says otherwise.
const conditions = [
  // Comparisons.
  { x: { $lt: 19 } }, { x: { $lte: 0 } }, { x: { $gt: -1 } }, { x: { $gte: 0 } },
  { x: { $lt: "5" } }, { x: { $gt: "a" } }, { x: { $lte: "abc" } },
  // Equality.
  { x: { $eq: null } }, { x: { $eq: 0 } }, { x: { $eq: false } },
  { x: { $ne: null } }, { x: { $ne: 0 } }, { x: { $ne: "abc" } },
  // Version comparisons.
  { x: { $vlt: "1.0.0" } }, { x: { $vlte: "0" } }, { x: { $vgt: "0.0.0" } },
  { x: { $vgte: "0.0.1" } }, { x: { $veq: "0" } }, { x: { $vne: "1.2.3" } },
  // Regular expressions (JS's RegExp.test turns its argument into a string).
  { x: { $regex: "null" } }, { x: { $regex: "^$" } }, { x: { $regex: "undefined" } },
  { x: { $regexi: "NULL" } }, { x: { $regex: "b" } },
  // Membership.
  { x: { $in: [null] } }, { x: { $in: [0] } }, { x: { $in: ["a", 18] } },
  { x: { $nin: [null] } }, { x: { $nin: ["a"] } }, { x: { $ini: ["NULL"] } },
  { x: { $nini: ["A"] } }, { x: { $inGroup: "vip" } }, { x: { $notInGroup: "vip" } },
  // Existence and type.
  { x: { $exists: true } }, { x: { $exists: false } },
  { x: { $type: "null" } }, { x: { $type: "undefined" } }, { x: { $type: "number" } },
  { x: { $type: "string" } }, { x: { $type: "object" } }, { x: { $type: "array" } },
  { x: { $type: "boolean" } },
  // Negation.
  { x: { $not: { $lt: 19 } } }, { x: { $not: { $exists: true } } },
  { x: { $not: { $eq: null } } }, { x: { $not: { $regex: "null" } } },
  // Arrays.
  { x: { $size: 0 } }, { x: { $elemMatch: { $gt: 0 } } }, { x: { $elemMatch: { $eq: 0 } } },
  { x: { $all: [1] } }, { x: { $alli: ["A"] } },
  // Plain values.
  { x: null }, { x: "null" }, { x: "" }, { x: "undefined" }, { x: 0 }, { x: false },
  { x: true }, { x: [] }, { x: { y: 1 } }, { x: [null] },
  // Paths through a missing or null parent.
  { "x.y": { $lt: 19 } }, { "x.y": null }, { "x.y": { $exists: false } },
  { "x.y": { $type: "null" } }, { "x.length": { $gt: 1 } },
  // Logical operators over a missing or null attribute.
  { $or: [{ x: { $lt: 19 } }] }, { $nor: [{ x: { $lt: 19 } }] },
  { $and: [{ x: { $exists: false } }, { x: null }] }, { $not: { x: { $exists: true } } },
];

const documents = [
  ["missing", {}],
  ["null", { x: null }],
  ["number 18", { x: 18 }],
  ["zero", { x: 0 }],
  ["string abc", { x: "abc" }],
  ["empty string", { x: "" }],
  ["false", { x: false }],
  ["array [1,a]", { x: [1, "a"] }],
  ["array [0]", { x: [0] }],
  ["object {y:5}", { x: { y: 5 } }],
];

const cases = [];
for (const condition of conditions) {
  for (const [label, document] of documents) {
    const name = `${JSON.stringify(condition)} on ${label}`;
    const expected = evalCondition(document, condition, groups);
    cases.push([name, condition, document, expected, groups]);
  }
}
process.stdout.write(JSON.stringify(cases, null, 0).replace(/\],\[/g, "],\n[") + "\n");
