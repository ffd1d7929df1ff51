-- wrk script: send each request of a file once, in order, over all connections; stop when
-- every one is answered. File format: "<byte length>\n<raw HTTP request>", repeated.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } timespec;
  int clock_gettime(int clock, timespec *now);
  int getpid(void);
  long syscall(long number, ...);
]]
local CLOCK_MONOTONIC, SIGINT = 1, 2
-- tgkill(2): signal one given thread (wrk's main thread, whose id is the process id).
local SYS_TGKILL = ({ x64 = 234, arm64 = 131, x86 = 270, arm = 268 })[jit.arch]
  or error("replay.lua: unknown tgkill syscall number on " .. jit.arch)
local now_buffer = ffi.new("timespec")
local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
  return tonumber(now_buffer.tv_sec) + tonumber(now_buffer.tv_nsec) / 1e9
end

-- Globals, so that done() can read them from the thread (thread:get).
requests, handed, answered, statuses, started, finished = {}, 0, 0, {}, 0, 0
local verified = false

function init(args)
  local file = assert(io.open(args[1], "rb"))
  while true do
    local line = file:read("*l")
    if not line then break end
    requests[#requests + 1] = file:read(tonumber(line))
  end
  file:close()
end

function request()
  -- wrk calls request() once before the run to count pipelined requests: not a send.
  if not verified then
    verified = true
    return requests[1]
  end
  handed = handed + 1
  if handed == 1 then started = now() end
  -- Nothing left: the connection stays quiet until the run ends.
  return requests[handed] or ""
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if answered == #requests then
    finished = now()
    -- wrk's main thread sleeps for the whole --duration: interrupt it, as Ctrl-C would.
    local pid = ffi.C.getpid()
    ffi.C.syscall(SYS_TGKILL, ffi.cast("long", pid), ffi.cast("long", pid), ffi.cast("long", SIGINT))
  end
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function done(summary, latency)
  local thread = threads[1]
  local parts = {}
  for status, count in pairs(thread:get("statuses")) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  io.write(string.format(
    'REPLAY {"requests": %d, "answered": %d, "elapsed": %.6f, "p50_us": %d, "p99_us": %d, '
      .. '"statuses": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    #thread:get("requests"), thread:get("answered"),
    thread:get("finished") - thread:get("started"),
    latency:percentile(50), latency:percentile(99), table.concat(parts, ", "),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
