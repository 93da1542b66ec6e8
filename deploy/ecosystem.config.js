// PM2 process file for a Windows 11 render machine (works on Linux/macOS too).
//
//   cd C:\ae-render-manager
//   pm2 start deploy\ecosystem.config.js
//   pm2 save
//
// Two processes, both fork mode with one instance (never cluster mode: the
// worker renders one job at a time and the web server keeps websocket state):
//   ae-render-manager-web     daphne serving the dashboard, API and websockets
//   ae-render-manager-worker  the render node (validation, rendering, housekeeping)
// Settings come from the .env file in the project folder (deploy/.env.example).
//
// Logs: var/logs/<name>-out.log and <name>-error.log, rotated daily by the
// pm2-logrotate module (install once, see README "Installing on a Windows 11
// render machine"):
//   pm2 install pm2-logrotate
//   pm2 set pm2-logrotate:rotateInterval "0 0 * * *"
//   pm2 set pm2-logrotate:retain 14
//   pm2 set pm2-logrotate:compress true
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");

// PORT as the application sees it: the environment, else the .env file.
function setting(name, fallback) {
  if (process.env[name]) return process.env[name];
  const file = process.env.ENV_FILE || path.join(root, ".env");
  try {
    for (const raw of fs.readFileSync(file, "utf8").split(/\r?\n/)) {
      const match = raw.trim().match(/^(?:export\s+)?([A-Z0-9_]+)\s*=\s*(.*)$/);
      if (match && match[1] === name) return match[2].replace(/^(['"])(.*)\1$/, "$2");
    }
  } catch (error) {
    // no .env file: defaults
  }
  return fallback;
}

const windows = process.platform === "win32";
const python = windows
  ? path.join(root, ".venv", "Scripts", "python.exe")
  : path.join(root, ".venv", "bin", "python");
const logs = path.join(root, "var", "logs");
fs.mkdirSync(logs, { recursive: true });
const port = setting("PORT", "8000");
// 127.0.0.1: only the reverse proxy (or this machine) reaches the web server.
// Set RENDER_MANAGER_BIND=0.0.0.0 to serve the LAN directly without a proxy.
const bind = process.env.RENDER_MANAGER_BIND || "127.0.0.1";

const common = {
  cwd: root,
  script: python,
  interpreter: "none", // python.exe is the program itself, not a Node script
  exec_mode: "fork",
  instances: 1,
  autorestart: true,
  max_memory_restart: "2G",
  restart_delay: 3000,
  exp_backoff_restart_delay: 1000,
  max_restarts: 50,
  min_uptime: "30s",
  merge_logs: true,
  log_date_format: "YYYY-MM-DD HH:mm:ss Z",
  windowsHide: true,
  env: { PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8" },
};

module.exports = {
  apps: [
    {
      ...common,
      name: "ae-render-manager-web",
      args: ["-m", "daphne", "-b", bind, "-p", port, "rendermanager.asgi:application"],
      out_file: path.join(logs, "ae-render-manager-web-out.log"),
      error_file: path.join(logs, "ae-render-manager-web-error.log"),
      kill_timeout: 10000,
    },
    {
      ...common,
      name: "ae-render-manager-worker",
      args: ["manage.py", "render_worker"],
      out_file: path.join(logs, "ae-render-manager-worker-out.log"),
      error_file: path.join(logs, "ae-render-manager-worker-error.log"),
      // On Linux/macOS the worker gets SIGINT, kills its render and requeues
      // the job without using an attempt; give it time to do so. On Windows
      // PM2 ends the process outright (the render guard then kills the render
      // tree, and the job counts a crashed attempt), so stop the node through
      // the database before any scripted restart:
      //   python manage.py node_command %COMPUTERNAME% stop --wait
      //   pm2 restart ae-render-manager-worker
      // The worker leaves by itself between renders above WORKER_MEMORY_LIMIT_MB
      // (1.5 GB), before max_memory_restart (2 GB) would kill it mid-render;
      // self-updates drain the whole farm before they restart it.
      kill_timeout: 20000,
    },
  ],
};
