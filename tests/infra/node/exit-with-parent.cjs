// Preload (`node -r ./exit-with-parent.cjs ...`) used by the Rust test harness:
// the harness holds the write end of this process's stdin, so when the test
// process ends in any way (even SIGKILL from a test-runner timeout) stdin
// reaches EOF and the component exits instead of lingering on its port.
'use strict';

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
