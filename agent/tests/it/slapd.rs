//! A real OpenLDAP server for the directory tests: Debian's slapd on loopback with a
//! generated configuration and certificate, filled with a small school by ldapadd, stopped
//! (and its files removed) when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const SUFFIX: &str = "dc=school,dc=example";
pub(crate) const BIND_DN: &str = "cn=schoolgate,ou=service,dc=school,dc=example";
pub(crate) const BIND_PASSWORD: &str = "gate-pass-1";
const ADMIN_DN: &str = "cn=admin,dc=school,dc=example";
const ADMIN_PASSWORD: &str = "admin-pass-1";

/// Two classes of pupils and two members of staff, kept the ways directories keep them:
/// `member` on groupOfNames (with memberOf from slapd's memberof overlay), a group within a
/// group (6B within "Year 6"), `memberUid` on a posixGroup, and a service account in no role.
pub(crate) const SCHOOL: &str = "\
dn: dc=school,dc=example
objectClass: dcObject
objectClass: organization
o: Loopback School
dc: school

dn: ou=people,dc=school,dc=example
objectClass: organizationalUnit
ou: people

dn: ou=pupils,ou=people,dc=school,dc=example
objectClass: organizationalUnit
ou: pupils

dn: ou=staff,ou=people,dc=school,dc=example
objectClass: organizationalUnit
ou: staff

dn: ou=service,dc=school,dc=example
objectClass: organizationalUnit
ou: service

dn: ou=groups,dc=school,dc=example
objectClass: organizationalUnit
ou: groups

dn: cn=schoolgate,ou=service,dc=school,dc=example
objectClass: person
objectClass: simpleSecurityObject
cn: schoolgate
sn: service
userPassword: gate-pass-1

dn: uid=amira.k,ou=pupils,ou=people,dc=school,dc=example
objectClass: inetOrgPerson
uid: amira.k
cn: Amira Khan
sn: Khan
displayName: Amira Khan
departmentNumber: 6B

dn: uid=ben.t,ou=pupils,ou=people,dc=school,dc=example
objectClass: inetOrgPerson
uid: ben.t
cn: Ben Taylor
sn: Taylor
departmentNumber: 6A

dn: uid=grace.o,ou=staff,ou=people,dc=school,dc=example
objectClass: inetOrgPerson
uid: grace.o
cn: Grace Okafor
sn: Okafor
displayName: Mrs Okafor

dn: uid=dan.d,ou=people,dc=school,dc=example
objectClass: inetOrgPerson
uid: dan.d
cn: Dan Director
sn: Director

dn: uid=backup,ou=service,dc=school,dc=example
objectClass: inetOrgPerson
uid: backup
cn: backup
sn: backup

dn: cn=6B,ou=groups,dc=school,dc=example
objectClass: groupOfNames
cn: 6B
member: uid=amira.k,ou=pupils,ou=people,dc=school,dc=example

dn: cn=6A,ou=groups,dc=school,dc=example
objectClass: groupOfNames
cn: 6A
member: uid=ben.t,ou=pupils,ou=people,dc=school,dc=example

dn: cn=Year 6,ou=groups,dc=school,dc=example
objectClass: groupOfNames
cn: Year 6
member: cn=6B,ou=groups,dc=school,dc=example
member: cn=6A,ou=groups,dc=school,dc=example

dn: cn=Directors,ou=groups,dc=school,dc=example
objectClass: groupOfNames
cn: Directors
member: uid=dan.d,ou=people,dc=school,dc=example

dn: cn=staff,ou=groups,dc=school,dc=example
objectClass: posixGroup
cn: staff
gidNumber: 5000
memberUid: grace.o
memberUid: dan.d
";

/// slapd, listening on LDAPS and on plain LDAP (for StartTLS) on loopback.
pub(crate) struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub(crate) ldaps: String,
    pub(crate) ldap: String,
}

impl Slapd {
    /// Starts slapd and fills it with [`SCHOOL`].
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        std::fs::write(dir.path().join("server.pem"), made.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("server.key"),
            made.signing_key.serialize_pem(),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let d = dir.path().display();
        let config = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {d}/slapd.pid
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
database mdb
maxsize 10485760
suffix \"{SUFFIX}\"
rootdn \"{ADMIN_DN}\"
rootpw {ADMIN_PASSWORD}
directory {d}/data
overlay memberof
"
        );
        std::fs::write(dir.path().join("slapd.conf"), config).unwrap();
        let (tls_port, plain_port) = (free_tcp_port(), free_tcp_port());
        let ldaps = format!("ldaps://127.0.0.1:{tls_port}");
        let ldap = format!("ldap://127.0.0.1:{plain_port}");
        let mut slapd = Self {
            child: None,
            dir,
            ldaps,
            ldap,
        };
        slapd.run(tls_port, plain_port);
        let add = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &slapd.ldap,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = {
            use std::io::Write as _;
            let mut add = add;
            add.stdin
                .take()
                .unwrap()
                .write_all(SCHOOL.as_bytes())
                .unwrap();
            add.wait_with_output().unwrap()
        };
        assert!(
            out.status.success(),
            "ldapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        slapd
    }

    fn run(&mut self, tls_port: u16, plain_port: u16) {
        let urls = format!("ldaps://127.0.0.1:{tls_port}/ ldap://127.0.0.1:{plain_port}/");
        // `-d 0`: in the foreground, logging nothing, so the test owns the process.
        let child = Command::new("/usr/sbin/slapd")
            .args(["-d", "0", "-h", &urls, "-f"])
            .arg(self.dir.path().join("slapd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slapd (Debian package slapd; scripts/setup installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", plain_port)).is_err()
            || TcpStream::connect(("127.0.0.1", tls_port)).is_err()
        {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read as _;
                let _ = self
                    .child
                    .take()
                    .unwrap()
                    .stderr
                    .unwrap()
                    .read_to_string(&mut err);
                panic!("slapd stopped ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "slapd did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's certificate, to trust.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// A file holding the service account's password.
    pub(crate) fn password_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ldap.password");
        std::fs::write(&path, format!("{BIND_PASSWORD}\n")).unwrap();
        path
    }

    /// Stops the server (its data stays, for [`Slapd::restart`]).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same ports.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        let (tls, plain) = (port(&self.ldaps), port(&self.ldap));
        self.run(tls, plain);
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
