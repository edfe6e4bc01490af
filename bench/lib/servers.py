"""The servers the benches measure, started as a deployment would run them: salt-fcgi
(FastCGI, CGI, --http) behind nginx or Apache with the shipped site files rendered
(`template`, as tests/deploy.rs does), and the Python reference servers (rest_wsgi under
gunicorn, rest_cherrypy under salt-api). Main configs are Debian's defaults with the
paths in a temp dir; TLS uses a throw-away self-signed certificate.
"""

import http.client
import os
import re
import shutil
import ssl
import subprocess
import time

from . import ROOT
from .procs import free_port, wait_path

WEB_USER = "www-data"
NGINX_SITE = "nginx/salt-fcgi.conf"
APACHE_CGI_SITE = "apache/salt-fcgi-cgid.conf"
APACHE_MODULES = "/usr/lib/apache2/modules"
CGI_FLOOR_C = os.path.join(ROOT, "bench", "cgi-floor.c")
RELEASE_BINARY = os.path.join(ROOT, "target", "release", "salt-fcgi")
LIMIT_BINARY = os.path.join(ROOT, "target", "release", "examples", "master_limit")


def cargo_build(argv, quiet=False):
    """`cargo <argv>` in the repository (e.g. ["build", "--release", ...]); fails loudly."""
    subprocess.run(["cargo"] + argv, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL if quiet else None)


def template(shipped, subs, edit=None):
    """A shipped config file (path relative to the repository) with its placeholders
    filled in, as tests/deploy_support's template() does: every placeholder given must be
    in the file, and none may be left on a line that is not a comment. `edit`: a function
    applied to the text first (e.g. to leave TLS out)."""
    path = os.path.join(ROOT, shipped)
    with open(path) as f:
        text = f.read()
    if edit is not None:
        text = edit(text)
    for token, value in subs.items():
        if token not in text:
            raise RuntimeError(f"{shipped} has no placeholder {token}")
        text = text.replace(token, value)
    for line in text.splitlines():
        code = line.lstrip()
        if code.startswith("#"):
            continue
        left = re.search(r"@[A-Z_]+@", code)
        if left:
            raise RuntimeError(f"{shipped}: placeholder {left.group(0)} left in: {line}")
    return text


def self_signed_cert(directory, key_type="ec"):
    """A self-signed certificate for 127.0.0.1 in `directory` (created), the same kind
    tests/deploy_support makes; key_type "ec" (P-256) or "rsa" (2048 bits). Returns
    (cert path, key path); the key is 0600 (the servers read it as root, before they drop
    privileges)."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if key_type == "ec"
              else ["-newkey", "rsa:2048"])
    subprocess.run(["openssl", "req", "-x509"] + newkey + [
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def tls_subs(listen, cert, key):
    """The placeholders of a shipped HTTPS site."""
    return {"@LISTEN@": listen, "@SERVER_NAME@": "localhost", "@TLS_CERT@": cert,
            "@TLS_KEY@": key}


# -- HTTP clients -------------------------------------------------------------------------


def http_request(base, path, body, ctype, timeout=60.0, tls=None):
    """One request to `base` (http://127.0.0.1:PORT or https://...; `tls`: the SSL context
    that trusts the bench's certificate): GET without a body, else POST. Returns
    (status, body)."""
    scheme, _, hostport = base.partition("://")
    host, _, port = hostport.rstrip("/").rpartition(":")
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=tls)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_http(base, proc, seconds=60.0, path="/", tls=None):
    """Waits until `base` answers HTTP; fails when `proc` (a Proc, or None) exits first or
    nothing answers within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start (see its log)")
        try:
            http_request(base, path, None, None, timeout=2, tls=tls)
            return
        except ssl.SSLCertVerificationError:
            raise
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered HTTP at {base} within {seconds:.0f} s")


# -- nginx --------------------------------------------------------------------------------

DEBIAN_NGINX_HTTP = """    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_prefer_server_ciphers on;
    access_log {d}/access.log;
    gzip on;
"""


def nginx_conf(d, workers, connections, rlimit_nofile=None, debian_http=False):
    """A main nginx.conf with everything in `d` (site.conf included): `workers` worker
    processes of `connections` connections each. debian_http: the http settings of
    Debian's nginx.conf (access log included); otherwise no access log."""
    user = f"user {WEB_USER};\n" if os.geteuid() == 0 else ""
    rlimit = f"worker_rlimit_nofile {rlimit_nofile};\n" if rlimit_nofile else ""
    http_settings = DEBIAN_NGINX_HTTP.format(d=d) if debian_http else "    access_log off;\n"
    return f"""# Main config of the bench nginx, with the paths in {d}.
daemon off;
{user}worker_processes {workers};
{rlimit}pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections {connections}; }}
http {{
{http_settings}    client_body_temp_path {d}/tmp/body;
    fastcgi_temp_path {d}/tmp/fastcgi;
    proxy_temp_path {d}/tmp/proxy;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/site.conf;
}}
"""


def start_nginx(procs, d, site, conf, preexec_fn=None):
    """Writes `site` (a rendered site file) and `conf` (from nginx_conf(d, ...)) into `d`
    and starts nginx on them as the process "nginx" of `procs`. `include fastcgi_params;`
    resolves next to the main config, as in /etc/nginx."""
    os.makedirs(os.path.join(d, "tmp"), mode=0o755, exist_ok=True)
    shutil.copy("/etc/nginx/fastcgi_params", os.path.join(d, "fastcgi_params"))
    with open(os.path.join(d, "site.conf"), "w") as f:
        f.write(site)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return procs.spawn("nginx", [nginx, "-e", f"{d}/error.log", "-p", d, "-c",
                                 f"{d}/nginx.conf"], preexec_fn=preexec_fn)


# -- Apache -------------------------------------------------------------------------------


def apache_conf(d, ports):
    """Apache's main config, Debian's apache2.conf, mpm_event.conf and ssl.conf defaults
    with the paths in `d` (site.conf included), listening on 127.0.0.1:`ports`."""
    user = f"User {WEB_USER}\nGroup {WEB_USER}\n" if os.geteuid() == 0 else ""
    mods = ["mpm_event", "authz_core", "mime", "socache_shmcb", "ssl", "alias", "cgid", "env"]
    loads = "".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so\n" for m in mods)
    listens = "".join(f"Listen 127.0.0.1:{p}\n" for p in ports)
    return f"""# Main config of the bench Apache: Debian's defaults with the paths in {d}.
ServerRoot {d}
PidFile {d}/run/httpd.pid
DefaultRuntimeDir {d}/run
Mutex file:{d}/run default
ErrorLog {d}/logs/error.log
LogLevel warn
{listens}ServerName 127.0.0.1
{user}Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
TypesConfig /etc/mime.types
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0
{loads}ScriptSock {d}/run/cgid.sock
SSLSessionCache shmcb:{d}/run/ssl_scache(512000)
SSLSessionCacheTimeout 300
<Directory />
    AllowOverride None
    Require all denied
</Directory>
Include {d}/site.conf
"""


# -- the Python reference servers ---------------------------------------------------------

WSGI_WRAPPER = (
    "# rest_wsgi returns str body items, which no PEP 3333 server accepts: encode them.\n"
    "from salt.netapi.rest_wsgi import application as _application\n\n\n"
    "def application(environ, start_response):\n"
    "    return [b if isinstance(b, bytes) else b.encode('utf-8')\n"
    "            for b in _application(environ, start_response)]\n")


def gunicorn_argv(venv, d, port, workers, timeout, backlog=None):
    """gunicorn serving rest_wsgi (through a wrapper written to `d`, its --chdir) with
    `workers` sync workers on 127.0.0.1:`port`; run it with SALT_MASTER_CONFIG set."""
    os.makedirs(d, mode=0o755, exist_ok=True)
    with open(os.path.join(d, "rest_wsgi_bytes.py"), "w") as f:
        f.write(WSGI_WRAPPER)
    argv = [f"{venv}/bin/gunicorn", "--workers", str(workers), "--worker-class", "sync",
            "--bind", f"127.0.0.1:{port}", "--timeout", str(timeout)]
    if backlog:
        argv += ["--backlog", str(backlog)]
    return argv + ["--chdir", d, "--log-level", "warning", "rest_wsgi_bytes:application"]


def salt_api_argv(venv, d, master_config, port, extra=""):
    """salt-api serving rest_cherrypy over plain HTTP on 127.0.0.1:`port`, its config dir
    `d` (created): the master config plus its own settings (`extra`: more lines under
    rest_cherrypy, indented)."""
    os.makedirs(d, mode=0o755, exist_ok=True)
    with open(master_config) as f:
        master = f.read()
    with open(os.path.join(d, "master"), "w") as f:
        f.write(master)
        f.write(f"""
# salt-api (bench): rest_cherrypy on loopback, plain HTTP.
api_pidfile: {d}/salt-api.pid
api_logfile: {d}/salt-api.log
rest_cherrypy:
  host: 127.0.0.1
  port: {port}
  disable_ssl: true
{extra}""")
    return [f"{venv}/bin/salt-api", "-c", d, "-l", "warning"]


# -- bench/run's servers ------------------------------------------------------------------


class WebServers:
    """The servers bench/run measures, one of each, in the work dir `work`, as processes of
    `procs`: `urls` maps a server (and "cgi-floor") to its base URL; `tls` is the SSL
    context that trusts their certificate."""

    APP = {"fastcgi": "salt-fcgi-fastcgi", "http": "salt-fcgi-http", "cherrypy": "salt-api"}
    FRONTEND = {"fastcgi": "nginx", "cgi": "apache"}

    def __init__(self, work, procs):
        self.work, self.procs = work, procs
        self.urls = {}
        self.tls = None
        self.gunicorn = None  # the process name of the running gunicorn
        self.gunicorn_workers = None

    def make_tls(self):
        """The certificate the shipped sites (HTTPS only) use; wrk does not verify it, the
        probes do."""
        if self.tls is None:
            self.tls_cert, self.tls_key = self_signed_cert(os.path.join(self.work, "tls"))
            self.tls = ssl.create_default_context(cafile=self.tls_cert)

    def start_fastcgi(self, binary, master_config, site, nginx_workers):
        """salt-fcgi --listen unix:SOCK behind nginx with the site file `site` rendered."""
        sock = os.path.join(self.work, "fcgi.sock")
        # Socket mode 666 instead of the units' 660 + group www-data: nginx's workers
        # (www-data) connect either way; salt-fcgi runs as the bench's user (the master's).
        self.procs.spawn("salt-fcgi-fastcgi", [binary, "--config", master_config,
                                               "--listen", f"unix:{sock}", "--socket-mode", "666"])
        wait_path(sock, 5)
        self.make_tls()
        d = os.path.join(self.work, "nginx")
        port = free_port()
        text = template(site, dict(tls_subs(f"127.0.0.1:{port}", self.tls_cert, self.tls_key),
                                   **{"@SOCKET@": sock}))
        nginx = start_nginx(self.procs, d, text,
                            nginx_conf(d, nginx_workers, 768, debian_http=True))
        self.urls["fastcgi"] = f"https://127.0.0.1:{port}"
        wait_http(self.urls["fastcgi"], nginx, tls=self.tls)

    def start_cgi(self, binary, floor_binary, master_config):
        """salt-fcgi as CGI under Apache mod_cgid with the shipped site; `floor_binary` (a
        minimal C CGI program, or None), the floor of any CGI program under this Apache,
        on a second port with the same site file."""
        self.make_tls()
        d = os.path.join(self.work, "apache")
        for sub in ("run", "logs"):
            os.makedirs(os.path.join(d, sub), mode=0o755)
        ports = []
        sites = []
        for program in [binary] + ([floor_binary] if floor_binary else []):
            port = free_port()
            sites.append(template(APACHE_CGI_SITE, dict(
                tls_subs(f"127.0.0.1:{port}", self.tls_cert, self.tls_key),
                **{"@BINARY@": program, "@MASTER_CONFIG@": master_config})))
            ports.append(port)
        with open(os.path.join(d, "site.conf"), "w") as f:
            f.write("\n".join(sites))
        with open(os.path.join(d, "httpd.conf"), "w") as f:
            f.write(apache_conf(d, ports))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
               "APACHE_LOG_DIR": os.path.join(d, "logs")}
        apache = self.procs.spawn("apache", ["apache2", "-f", f"{d}/httpd.conf", "-DFOREGROUND"],
                                  env=env)
        self.urls["cgi"] = f"https://127.0.0.1:{ports[0]}"
        wait_http(self.urls["cgi"], apache, tls=self.tls)
        if floor_binary:
            self.urls["cgi-floor"] = f"https://127.0.0.1:{ports[1]}"

    def start_http(self, binary, master_config):
        """salt-fcgi --http on a free port."""
        port = free_port()
        httpd = self.procs.spawn("salt-fcgi-http", [binary, "--config", master_config,
                                                    "--http", f"127.0.0.1:{port}"])
        self.urls["http"] = f"http://127.0.0.1:{port}"
        wait_http(self.urls["http"], httpd)

    def start_wsgi(self, venv, master_config, workers):
        """rest_wsgi under gunicorn with `workers` sync workers (restarted when the count
        changes)."""
        if self.gunicorn is not None and self.gunicorn_workers == workers:
            return
        self.stop_wsgi()
        port = free_port()
        d = os.path.join(self.work, "gunicorn")
        self.gunicorn = f"gunicorn-w{workers}"
        proc = self.procs.spawn(self.gunicorn, gunicorn_argv(venv, d, port, workers, 300, 256),
                                env=dict(os.environ, SALT_MASTER_CONFIG=master_config), cwd=d)
        self.urls["wsgi"] = f"http://127.0.0.1:{port}"
        wait_http(self.urls["wsgi"], proc)
        self.gunicorn_workers = workers

    def stop_wsgi(self):
        """Stops gunicorn, if it runs."""
        if self.gunicorn is not None:
            self.procs.stop(self.gunicorn)
            self.gunicorn = None

    def start_cherrypy(self, venv, master_config):
        """salt-api with rest_cherrypy, plain HTTP."""
        port = free_port()
        argv = salt_api_argv(venv, os.path.join(self.work, "salt-api"), master_config, port)
        salt_api = self.procs.spawn("salt-api", argv)
        self.urls["cherrypy"] = f"http://127.0.0.1:{port}"
        wait_http(self.urls["cherrypy"], salt_api, seconds=90)

    def _roots(self, name):
        p = self.procs.get(name) if name else None
        return [p.pid] if p is not None else []

    def app_roots(self, server):
        """Root pids of the application processes whose RSS is reported."""
        return self._roots(self.gunicorn if server == "wsgi" else self.APP.get(server))

    def frontend_roots(self, server):
        """Root pids of the web server in front of `server` (nginx, Apache)."""
        return self._roots(self.FRONTEND.get(server))

    @staticmethod
    def path(server):
        """The path requests go to: rest_cherrypy's /run, or /."""
        return "/run" if server == "cherrypy" else "/"
