import Table from "cli-table3";
import type { Colors } from "./style.js";

const NO_BORDERS = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "   ",
};

/** Aligned columns under upper-case headings, like kubectl's. */
export function table(c: Colors, head: string[], rows: string[][]): string {
  const t = new Table({
    head: head.map((h) => c.bold(h)),
    chars: NO_BORDERS,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0 },
  });
  t.push(...rows);
  return `${t
    .toString()
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n")}\n`;
}

/** A record shown as "Label   value" lines; multi-line values stay aligned. */
export function details(c: Colors, fields: [string, string][]): string {
  const width = Math.max(...fields.map(([label]) => label.length)) + 2;
  return fields
    .map(([label, value]) => {
      const [first = "", ...rest] = value.split("\n");
      const pad = " ".repeat(width);
      return [`${c.bold(label)}${" ".repeat(width - label.length)}${first}`, ...rest.map((l) => pad + l)].join("\n");
    })
    .map((line) => `${line}\n`)
    .join("");
}
