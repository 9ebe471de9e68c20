-- wrk script: cycle through the requests listed in $WRK_LIST (one per line: path, then a
-- tab and a body file for uploads), each wrk thread its own share; print a JSON summary.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local method = os.getenv("WRK_METHOD") or "GET"
  local share = tonumber(os.getenv("WRK_THREADS") or "1")
  local headers = {}
  if os.getenv("WRK_LANE") then headers["X-Imagescan-Lane"] = os.getenv("WRK_LANE") end
  prepared, position = {}, 0
  local line_number = 0
  for line in io.lines(os.getenv("WRK_LIST")) do
    if line_number % share == id then
      local path, file = line:match("^([^\t]+)\t?(.*)$")
      local body = nil
      if file ~= "" then
        local handle = io.open(file, "rb")
        body = handle:read("*a")
        handle:close()
      end
      table.insert(prepared, wrk.format(method, path, headers, body))
    end
    line_number = line_number + 1
  end
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
