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
// line of its own once the CLI reports success: the node then publishes, and
// starts the next render, while this process ends.
// Closing stdin without a line ends the launcher without rendering.
//
// After success the launcher ends once its stdin ends (at once if it ended
// already): the node lets it go when the next render is under way, or at once
// if there is none. Ending node.js costs several milliseconds of CPU, which
// would otherwise be spent beside the next render's start. A failed render
// ends at once, as the CLI exits by itself.
//
// A job claimed ahead, while the node's previous render still runs, comes with
// "gate": true. The CLI then runs nexrender's steps up to the render (setting
// up, copying the project and assets, scripts) at once, and starts aerender only
// once the node writes a second line, "go" (when the previous render's processes
// have ended: two renders never overlap). Closing stdin without "go" ends the
// launcher (exit code 3) before aerender starts.
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

// The gate of a job claimed ahead: nexrender's render step (core's
// tasks/render.js, which starts aerender) waits for it. Installed before core is
// loaded, as core keeps a reference to that step. Without it (another core
// layout) a gated job waits for "go" before the CLI starts at all.
let gate = null;
let openGate = null;
const gated = (() => {
    try {
        const task = path.join(path.dirname(require.resolve('@nexrender/core', from)),
            'tasks', 'render.js');
        const step = require(task);
        if (typeof step !== 'function' || !require.cache[task]) {
            return false;
        }
        require.cache[task].exports = (job, settings) =>
            (gate ? gate.then(() => step(job, settings)) : step(job, settings));
        return true;
    } catch (err) {
        return false;
    }
})();
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

// Set once stdin has ended: the node let this process go.
let released = false;
let succeeded = false;

function exitWhenDone(token) {
    const log = console.log;
    console.log = (...args) => {
        if (!(args.length === 1 && args[0] === DONE)) {
            log.apply(console, args);
        } else {
            // The line and the token in one write: the node wakes once for both.
            process.stdout.write(`${DONE}\n${token ? `${token}\n` : ''}`, () => {
                succeeded = true;
                if (released) {
                    process.exit(0);
                }
            });
        }
    };
}

function run(job) {
    if (job.marker) {
        process.env[MARKER_ENV] = String(job.marker);
    }
    process.chdir(job.cwd);
    process.argv = [process.argv[0], cli, ...job.args];
    exitWhenDone(typeof job.done === 'string' ? job.done : '');
    require(cli);
}

let input = '';
let job = null;
let open = false; // the gate was opened
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
    if (job !== null && (!job.gate || open)) {
        return; // nothing more is read once the render goes
    }
    input += chunk;
    let end;
    while ((end = input.indexOf('\n')) >= 0) {
        const line = input.slice(0, end);
        input = input.slice(end + 1);
        if (job === null) {
            try {
                job = JSON.parse(line);
            } catch (err) {
                console.error('nexrender launcher: unreadable job line:', err.message);
                process.exit(2);
            }
            if (!job.gate) {
                run(job);
                return;
            }
            if (gated) {
                gate = new Promise((resolve) => { openGate = resolve; });
                run(job);
            }
        } else if (line.trim() === 'go') {
            open = true;
            if (gated) {
                openGate();
            } else {
                run(job);
            }
            return;
        }
    }
});
process.stdin.on('end', () => {
    released = true;
    if (job === null) {
        process.exit(0); // a spare let go without a job
    } else if (job.gate && !open) {
        process.exit(3); // a job claimed ahead, dropped before aerender
    } else if (succeeded) {
        process.exit(0);
    }
    // Else the render goes on, and the launcher ends with it.
});
