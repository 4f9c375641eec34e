#!/usr/bin/env node
// The one list of the addon's C++ sources, for binding.gyp (`<!@(node scripts/native-sources.js addon)`)
// and for the fuzzer build (native/fuzz/run.sh: `data-path`). Whole folders are listed, so a new port
// or core file needs no build edit. Paths are relative to the repository root, one per line, sorted.
//   data-path  native/core, native/net, native/net/ports, native/net/switch: no N-API, what the fuzzer links
//   addon      the data path plus native/addon.cc and native/napi (the N-API wraps)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const DATA_PATH = ['native/core', 'native/net', 'native/net/ports', 'native/net/switch'];
const ADDON = ['native/addon.cc', 'native/napi', ...DATA_PATH];

/** The .cc files of each entry: a folder gives its own files (not its subfolders'), a file itself. */
function sources(entries) {
  return entries.flatMap((entry) => {
    if (entry.endsWith('.cc')) return [entry];
    return fs
      .readdirSync(path.join(root, entry))
      .filter((name) => name.endsWith('.cc'))
      .sort()
      .map((name) => `${entry}/${name}`);
  });
}

const sets = { 'data-path': DATA_PATH, addon: ADDON };
const which = process.argv[2];
if (!Object.hasOwn(sets, which ?? '')) {
  process.stderr.write(`usage: node scripts/native-sources.js ${Object.keys(sets).join('|')}\n`);
  process.exit(2);
}
process.stdout.write(sources(sets[which]).join('\n') + '\n');
