// nexrender-cli, started before its job is known.
//
//     node nexrender_launcher.js <path of @nexrender/cli's bin.js>
//
// Starting node.js and loading @nexrender/core costs a few hundred
// milliseconds, which would sit between one render's end and the next one's
// start. So the render node starts this launcher ahead of time (while the
// previous render runs, or while it is idle): it loads what the CLI loads and
// waits. When a job is claimed the node writes one JSON line to its stdin:
//
//     {"cwd": <work folder>, "args": [<nexrender-cli arguments>], "marker": <str>,
//      "done": <str>}
//
// and the launcher runs the CLI itself (its bin.js, with those arguments),
// exactly as `node bin.js <args>` would have: one process per render, as
// before. "marker" goes into the environment of what the CLI starts
// (aerender, After Effects), so that the node can find and kill them by job.
// "done" (a secret of this render, never in any environment) is printed on a
// line of its own once the CLI reports success: the node then publishes while
// node.js exits and the guard sweeps, instead of after them.
// Closing stdin without a line ends the launcher without rendering.
//
// The Linux start-up workaround (nexrender_linux_preload.js) is loaded with
// NODE_OPTIONS=--require, as for the CLI started directly.
'use strict';
const path = require('path');

const MARKER_ENV = 'AE_RENDER_MANAGER_RENDER';
const cli = process.argv[2];
if (!cli) {
    console.error('usage: node nexrender_launcher.js <nexrender-cli bin.js>');
    process.exit(2);
}

// What bin.js requires, resolved from where bin.js is, so that its own
// require() calls find them in the module cache.
const from = { paths: [path.dirname(cli)] };
for (const name of ['@nexrender/core', 'arg', 'chalk', 'rimraf', '../package.json']) {
    try {
        require(name.startsWith('.') ? path.resolve(path.dirname(cli), name)
            : require.resolve(name, from));
    } catch (err) {
        // bin.js reports a missing module itself, once it runs.
    }
}

// The CLI logs this once the render succeeded, and then waits for node.js to
// run out of work (timers, handles of its helpers) before the process ends,
// which the render node waits for. Leave as soon as stdout has drained.
const DONE = '> job rendering successfully finished';

function exitWhenDone(token) {
    const log = console.log;
    console.log = (...args) => {
        log.apply(console, args);
        if (args.length === 1 && args[0] === DONE) {
            process.stdout.write(token ? `${token}\n` : '', () => process.exit(0));
        }
    };
}

let input = '';
let started = false;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
    input += chunk;
    const end = input.indexOf('\n');
    if (end < 0 || started) {
        return;
    }
    started = true;
    process.stdin.removeAllListeners('data');
    process.stdin.destroy();
    let job;
    try {
        job = JSON.parse(input.slice(0, end));
    } catch (err) {
        console.error('nexrender launcher: unreadable job line:', err.message);
        process.exit(2);
    }
    if (job.marker) {
        process.env[MARKER_ENV] = String(job.marker);
    }
    process.chdir(job.cwd);
    process.argv = [process.argv[0], cli, ...job.args];
    exitWhenDone(typeof job.done === 'string' ? job.done : '');
    require(cli);
});
process.stdin.on('end', () => {
    if (!started) {
        process.exit(0);  // let go without a job
    }
});
