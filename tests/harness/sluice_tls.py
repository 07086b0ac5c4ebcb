"""sluice_tls.py - certificates for TLS tests, made with the openssl CLI.

    from sluice_tls import Pki
    pki = Pki(str(tmp_path / "pki"))
    pki.ca                      # CA certificate (PEM path)
    pki.server("srv")           # (cert, key) for localhost / 127.0.0.1
    pki.server("old", days=-1)  # an expired one
    pki.client("alice")         # (cert, key), subject CN=alice
    Pki(other_dir).server(...)  # signed by another CA: untrusted

Every key is mode 0600. The commands are those of docs/security.md.
"""

import os
import subprocess


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" %
                           (" ".join(args), r.stderr.decode(errors="replace")))


class Pki:
    def __init__(self, directory, ca_name="Sluice Test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        _run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
              self.ca_key, "-out", self.ca, "-days", "30", "-subj",
              "/CN=" + ca_name], directory)
        os.chmod(self.ca_key, 0o600)

    def _issue(self, name, subj, ext, days):
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        crt = os.path.join(self.dir, name + ".crt")
        extf = os.path.join(self.dir, name + ".ext")
        with open(extf, "w") as f:
            f.write(ext)
        _run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
              csr, "-subj", subj], self.dir)
        os.chmod(key, 0o600)
        _run(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
              self.ca_key, "-CAcreateserial", "-out", crt, "-days",
              str(days), "-extfile", extf], self.dir)
        return crt, key

    def server(self, name="server", days=30, host="localhost",
               org="Sluice", ip="127.0.0.1"):
        san = "DNS:%s" % host + (",IP:%s" % ip if ip else "")
        return self._issue(
            name, "/O=%s/CN=%s" % (org, host),
            "subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san, days)

    def client(self, user, days=30):
        return self._issue("client-" + user, "/O=Sluice/CN=%s" % user,
                           "extendedKeyUsage=clientAuth\n", days)

    def client_san(self, name, cn, san, days=30):
        """A client certificate with subject CN=cn and subjectAltName san
        (e.g. "email:carol@example.com")."""
        return self._issue("client-" + name, "/O=Sluice/CN=%s" % cn,
                           "subjectAltName=%s\nextendedKeyUsage=clientAuth\n"
                           % san, days)
