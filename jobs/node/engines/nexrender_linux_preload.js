// Loaded into nexrender-cli with NODE_OPTIONS=--require on Linux only.
//
// @nexrender/core looks for an After Effects install even when --binary is
// given, and has no table of paths for Linux: without one it crashes at start
// with "Cannot read properties of null (reading 'length')". An empty table
// makes it fall back to --binary. (notes/nexrender.md, "Running it on Linux")
'use strict';
const os = require('os');
const path = require('path');

const module_ = '@nexrender/core/src/helpers/autofind';
// argv[1]: nexrender-cli's bin.js, or the launcher (nexrender_launcher.js)
// whose argv[2] is bin.js.
const places = [process.argv[1], process.argv[2]]
    .filter((arg) => arg && arg.endsWith('.js')).map((arg) => path.dirname(arg))
    .concat([__dirname]);
try {
    const autofind = require(require.resolve(module_, { paths: places }));
    autofind.defaultPaths[os.platform()] ||= [];
} catch (err) {
    // Not nexrender (NODE_OPTIONS reaches every node child), or a layout we do
    // not know: nexrender reports its own error if it matters.
}
