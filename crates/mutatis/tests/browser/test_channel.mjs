// The line protocol a browser script speaks with the Rust test that runs it: one JSON object
// a line on stdout (`say`), go-aheads read a line at a time from stdin (`nextLine`, '' once
// stdin is closed), and `closeInput` so that node can exit when the script is done.

import { createInterface } from 'node:readline';

const lines = createInterface({ input: process.stdin });

export const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

export const nextLine = () =>
  new Promise((resolve) => {
    lines.once('line', resolve);
    lines.once('close', () => resolve(''));
  });

export const closeInput = () => lines.close();
