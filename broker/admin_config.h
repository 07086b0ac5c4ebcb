/*
 * admin_config.h - settings of the management module (broker/admin.c,
 * broker/http.c): a drop-in of broker/config_table.h (SL_CFG lines only,
 * no include guard).
 */
SL_CFG(http_listen, "http-listen", ADDR, "127.0.0.1:7480", 0, 0, 0, NULL,
       "HTTP listen address HOST:PORT for /metrics (Prometheus), /healthz, "
       "/readyz, the JSON management API (/api/...) and the web console "
       "(/). Port 0 = any free port (the ready line reports it). Loopback "
       "by default: it has no authentication or TLS yet, so do not expose "
       "it beyond the host (docs/http-api.md).")
