//! Offline base images: writes OCI image-layout tarballs (one uncompressed layer,
//! deterministic bytes, sha256 digests) that `ctr images import` loads under a fully
//! qualified name, and builds the node's two base images from a static busybox:
//! `localhost/busybox:1.35` and the sandbox image `localhost/pause:3.6`.

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

/// Reference of the general-purpose busybox image.
pub const BUSYBOX_IMAGE: &str = "localhost/busybox:1.35";
/// Reference of the pod sandbox ("pause") image.
pub const PAUSE_IMAGE: &str = "localhost/pause:3.6";

/// Modification time of every tar entry, so that the same input gives the same bytes.
const FIXED_MTIME: u64 = 0;
const CREATED: &str = "1970-01-01T00:00:00Z";

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Busybox applets linked under /bin in the base images.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "[",
    "[[",
    "ash",
    "awk",
    "base64",
    "basename",
    "cat",
    "chmod",
    "chown",
    "chroot",
    "cmp",
    "cp",
    "cut",
    "date",
    "dd",
    "df",
    "diff",
    "dirname",
    "dmesg",
    "du",
    "echo",
    "egrep",
    "env",
    "expr",
    "false",
    "fgrep",
    "find",
    "free",
    "grep",
    "gunzip",
    "gzip",
    "head",
    "hexdump",
    "hostname",
    "httpd",
    "id",
    "ifconfig",
    "ip",
    "kill",
    "killall",
    "less",
    "ln",
    "ls",
    "md5sum",
    "mkdir",
    "mkfifo",
    "mktemp",
    "more",
    "mount",
    "mv",
    "nc",
    "netstat",
    "nproc",
    "nslookup",
    "od",
    "pidof",
    "ping",
    "ping6",
    "printf",
    "ps",
    "pwd",
    "readlink",
    "realpath",
    "rev",
    "rm",
    "rmdir",
    "route",
    "sed",
    "seq",
    "setsid",
    "sh",
    "sha256sum",
    "sleep",
    "sort",
    "stat",
    "strings",
    "su",
    "sync",
    "sysctl",
    "tac",
    "tail",
    "tar",
    "tee",
    "telnet",
    "test",
    "time",
    "timeout",
    "top",
    "touch",
    "tr",
    "traceroute",
    "true",
    "umount",
    "uname",
    "uniq",
    "uptime",
    "usleep",
    "vi",
    "watch",
    "wc",
    "wget",
    "which",
    "whoami",
    "xargs",
    "yes",
    "zcat",
];

/// Sandbox entrypoint: sleeps forever, exits 0 on SIGTERM/SIGINT (PID 1 ignores signals it
/// has no handler for, so a plain `sleep` would only die to SIGKILL), and reaps orphans
/// when the pod shares its PID namespace.
pub const PAUSE_SCRIPT: &str =
    "trap 'exit 0' TERM INT; while true; do sleep 2147483647 & wait $!; done";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {0:?}: want [domain/]name:tag without a digest")]
    Reference(String),
    #[error("invalid path {0:?} in image layer")]
    LayerPath(String),
    #[error("build tar archive: {0}")]
    Archive(#[source] std::io::Error),
    #[error("read busybox binary {}: {source}", .path.display())]
    ReadBusybox {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create directory {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write image archive {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One entry of the image's single layer. Paths are absolute or relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFile {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl ImageFile {
    pub fn dir(path: &str, mode: u32) -> ImageFile {
        ImageFile::Dir {
            path: path.to_string(),
            mode,
        }
    }

    pub fn file(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> ImageFile {
        ImageFile::File {
            path: path.to_string(),
            data: data.into(),
            mode,
        }
    }

    pub fn symlink(path: &str, target: &str) -> ImageFile {
        ImageFile::Symlink {
            path: path.to_string(),
            target: target.to_string(),
        }
    }
}

/// The runtime part of the OCI image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// OCI architecture name (`amd64`, `arm64`, …).
    pub architecture: String,
    pub os: String,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            env: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            working_dir: "/".to_string(),
            user: String::new(),
            architecture: oci_architecture(std::env::consts::ARCH).to_string(),
            os: "linux".to_string(),
        }
    }
}

/// Maps Rust's architecture names to OCI/Go ones.
pub fn oci_architecture(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

/// An image archive in memory, with the digests it contains.
#[derive(Debug, Clone)]
pub struct OciArchive {
    pub bytes: Vec<u8>,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The tag of a reference (`localhost/pause:3.6` -> `3.6`), `latest` when it has none.
/// Errors on empty references and references with a digest.
pub fn reference_tag(reference: &str) -> Result<&str, ImageError> {
    let bad = || ImageError::Reference(reference.to_string());
    if reference.is_empty() || reference.contains('@') || reference.contains(char::is_whitespace) {
        return Err(bad());
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.rsplit_once(':') {
        Some((name, tag)) if !name.is_empty() && !tag.is_empty() => Ok(tag),
        Some(_) => Err(bad()),
        None if last.is_empty() => Err(bad()),
        None => Ok("latest"),
    }
}

fn layer_path(path: &str) -> Result<String, ImageError> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(ImageError::LayerPath(path.to_string()))
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(FIXED_MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// The uncompressed layer tarball for `files`, in the given order.
pub fn build_layer(files: &[ImageFile]) -> Result<Vec<u8>, ImageError> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        match f {
            ImageFile::Dir { path, mode } => {
                let p = format!("{}/", layer_path(path)?);
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, p, std::io::empty())
                    .map_err(ImageError::Archive)?;
            }
            ImageFile::File { path, data, mode } => {
                let p = layer_path(path)?;
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, p, data.as_slice())
                    .map_err(ImageError::Archive)?;
            }
            ImageFile::Symlink { path, target } => {
                let p = layer_path(path)?;
                if target.is_empty() {
                    return Err(ImageError::LayerPath(path.clone()));
                }
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, p, target)
                    .map_err(ImageError::Archive)?;
            }
        }
    }
    b.into_inner().map_err(ImageError::Archive)
}

fn to_json(v: &serde_json::Value) -> Vec<u8> {
    // Serializing a Value cannot fail (string keys only).
    serde_json::to_vec(v).unwrap_or_default()
}

/// Builds the whole OCI image-layout tarball in memory (pure).
pub fn build_oci_archive(
    reference: &str,
    files: &[ImageFile],
    config: &ImageConfig,
) -> Result<OciArchive, ImageError> {
    let tag = reference_tag(reference)?;
    let layer = build_layer(files)?;
    let layer_digest = sha256_digest(&layer);

    let mut runtime = serde_json::Map::new();
    if !config.user.is_empty() {
        runtime.insert("User".into(), json!(config.user));
    }
    if !config.env.is_empty() {
        runtime.insert("Env".into(), json!(config.env));
    }
    if !config.entrypoint.is_empty() {
        runtime.insert("Entrypoint".into(), json!(config.entrypoint));
    }
    if !config.cmd.is_empty() {
        runtime.insert("Cmd".into(), json!(config.cmd));
    }
    if !config.working_dir.is_empty() {
        runtime.insert("WorkingDir".into(), json!(config.working_dir));
    }
    let config_json = to_json(&json!({
        "created": CREATED,
        "architecture": config.architecture,
        "os": config.os,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": CREATED, "created_by": "minik8s node base image"}],
    }));
    let config_digest = sha256_digest(&config_json);

    let manifest_json = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_json.len()},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer.len()}],
    }));
    let manifest_digest = sha256_digest(&manifest_json);

    let index_json = to_json(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_json.len(),
            "platform": {"architecture": config.architecture, "os": config.os},
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }));
    let layout_json = to_json(&json!({"imageLayoutVersion": "1.0.0"}));

    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| -> Result<(), ImageError> {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, path, data)
            .map_err(ImageError::Archive)
    };
    add("oci-layout", &layout_json)?;
    add("index.json", &index_json)?;
    let mut blob = |digest: &str, data: &[u8]| {
        let hex = digest.trim_start_matches("sha256:");
        add(&format!("blobs/sha256/{hex}"), data)
    };
    blob(&config_digest, &config_json)?;
    blob(&manifest_digest, &manifest_json)?;
    blob(&layer_digest, &layer)?;
    let bytes = b.into_inner().map_err(ImageError::Archive)?;
    Ok(OciArchive {
        bytes,
        manifest_digest,
        config_digest,
        layer_digest,
    })
}

/// Writes an OCI image-layout tarball for `reference` to `out` (through a temporary file
/// renamed into place, so a reader never sees half an archive).
pub fn write_oci_archive(
    out: &Path,
    reference: &str,
    files: &[ImageFile],
    config: &ImageConfig,
) -> Result<(), ImageError> {
    let archive = build_oci_archive(reference, files, config)?;
    write_atomic(out, &archive.bytes)
}

fn write_atomic(out: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write_err = |source| ImageError::Write {
        path: out.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(write_err)?;
    std::fs::rename(&tmp, out).map_err(write_err)
}

/// The root filesystem of the base images: busybox with applet links, users, and the
/// usual top-level directories.
pub fn busybox_rootfs(busybox: Vec<u8>) -> Vec<ImageFile> {
    let mut files = vec![
        ImageFile::dir("bin", 0o755),
        ImageFile::dir("dev", 0o755),
        ImageFile::dir("etc", 0o755),
        ImageFile::dir("home", 0o755),
        ImageFile::dir("proc", 0o555),
        ImageFile::dir("root", 0o700),
        ImageFile::dir("sbin", 0o755),
        ImageFile::dir("sys", 0o555),
        ImageFile::dir("tmp", 0o1777),
        ImageFile::dir("usr", 0o755),
        ImageFile::dir("usr/bin", 0o755),
        ImageFile::dir("usr/sbin", 0o755),
        ImageFile::dir("var", 0o755),
        ImageFile::dir("var/log", 0o755),
        ImageFile::file("bin/busybox", busybox, 0o755),
    ];
    for applet in BUSYBOX_APPLETS {
        files.push(ImageFile::symlink(&format!("bin/{applet}"), "busybox"));
    }
    files.push(ImageFile::symlink("usr/bin/env", "/bin/busybox"));
    files.push(ImageFile::file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        0o644,
    ));
    files.push(ImageFile::file(
        "etc/group",
        "root:x:0:\nnobody:x:65534:\n",
        0o644,
    ));
    files
}

/// Config of `localhost/busybox:1.35`.
pub fn busybox_config() -> ImageConfig {
    ImageConfig {
        env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string()],
        cmd: vec!["sh".to_string()],
        ..ImageConfig::default()
    }
}

/// Config of `localhost/pause:3.6`.
pub fn pause_config() -> ImageConfig {
    ImageConfig {
        env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string()],
        entrypoint: vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            PAUSE_SCRIPT.to_string(),
        ],
        ..ImageConfig::default()
    }
}

/// Both base image archives in memory (pure): `(file name, archive)`.
pub fn base_image_archives(
    busybox: Vec<u8>,
) -> Result<Vec<(&'static str, OciArchive)>, ImageError> {
    let rootfs = busybox_rootfs(busybox);
    Ok(vec![
        (
            "busybox.tar",
            build_oci_archive(BUSYBOX_IMAGE, &rootfs, &busybox_config())?,
        ),
        (
            "pause.tar",
            build_oci_archive(PAUSE_IMAGE, &rootfs, &pause_config())?,
        ),
    ])
}

/// Writes `out_dir/busybox.tar` (`localhost/busybox:1.35`) and `out_dir/pause.tar`
/// (`localhost/pause:3.6`) built around the static busybox binary at `busybox`.
pub fn build_base_images(out_dir: &Path, busybox: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let bin = std::fs::read(busybox).map_err(|source| ImageError::ReadBusybox {
        path: busybox.to_path_buf(),
        source,
    })?;
    let archives = base_image_archives(bin)?;
    std::fs::create_dir_all(out_dir).map_err(|source| ImageError::CreateDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, archive) in archives {
        let path = out_dir.join(name);
        write_atomic(&path, &archive.bytes)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    /// Reads a tar into (path -> (entry type, mode, data or link target)).
    fn entries(bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut ar = tar::Archive::new(bytes);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mode = e.header().mode().unwrap();
            assert_eq!(e.header().mtime().unwrap(), FIXED_MTIME);
            let data = if kind == tar::EntryType::Symlink {
                e.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes()
            } else {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                v
            };
            out.insert(path, (kind, mode, data));
        }
        out
    }

    fn json_of(v: &[u8]) -> serde_json::Value {
        serde_json::from_slice(v).unwrap()
    }

    fn blob<'a>(
        ents: &'a BTreeMap<String, (tar::EntryType, u32, Vec<u8>)>,
        digest: &str,
    ) -> &'a [u8] {
        let p = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        &ents.get(&p).unwrap_or_else(|| panic!("missing {p}")).2
    }

    #[test]
    fn archive_layout_digests_and_annotations() {
        let files = vec![
            ImageFile::dir("/bin", 0o755),
            ImageFile::file("/bin/tool", b"#!/bin/sh\n".to_vec(), 0o755),
            ImageFile::symlink("/bin/alias", "tool"),
            ImageFile::dir("tmp/", 0o1777),
        ];
        let cfg = ImageConfig {
            env: vec!["PATH=/bin".into()],
            cmd: vec!["tool".into()],
            architecture: "amd64".into(),
            ..ImageConfig::default()
        };
        let a = build_oci_archive("localhost/tool:2.0", &files, &cfg).unwrap();
        let ents = entries(&a.bytes);
        assert!(ents.contains_key("oci-layout"));
        assert_eq!(
            json_of(&ents["oci-layout"].2)["imageLayoutVersion"],
            "1.0.0"
        );

        let index = json_of(&ents["index.json"].2);
        let m = &index["manifests"][0];
        assert_eq!(m["digest"], a.manifest_digest.as_str());
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "localhost/tool:2.0"
        );
        assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "2.0");
        assert_eq!(m["platform"]["architecture"], "amd64");

        // Every blob is stored under its own sha256.
        for (path, (_, _, data)) in &ents {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256_digest(data), format!("sha256:{hex}"));
            }
        }
        let manifest_bytes = blob(&ents, &a.manifest_digest);
        assert_eq!(m["size"], manifest_bytes.len());
        let manifest = json_of(manifest_bytes);
        assert_eq!(manifest["config"]["digest"], a.config_digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], a.layer_digest.as_str());
        assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_LAYER);
        let config = json_of(blob(&ents, &a.config_digest));
        assert_eq!(config["rootfs"]["diff_ids"][0], a.layer_digest.as_str());
        assert_eq!(config["config"]["Cmd"][0], "tool");
        assert_eq!(config["config"]["Env"][0], "PATH=/bin");
        assert!(config["config"].get("Entrypoint").is_none());

        let layer = entries(blob(&ents, &a.layer_digest));
        assert_eq!(layer["bin/"].0, tar::EntryType::Directory);
        assert_eq!(layer["tmp/"].1, 0o1777);
        assert_eq!(
            layer["bin/tool"],
            (tar::EntryType::Regular, 0o755, b"#!/bin/sh\n".to_vec())
        );
        assert_eq!(layer["bin/alias"].0, tar::EntryType::Symlink);
        assert_eq!(layer["bin/alias"].2, b"tool");
    }

    #[test]
    fn archive_is_deterministic() {
        let files = busybox_rootfs(b"fake busybox".to_vec());
        let a = build_oci_archive(BUSYBOX_IMAGE, &files, &busybox_config()).unwrap();
        let b = build_oci_archive(BUSYBOX_IMAGE, &files, &busybox_config()).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.manifest_digest, b.manifest_digest);
        // A different reference changes only the index, not the image.
        let c = build_oci_archive("localhost/other:1", &files, &busybox_config()).unwrap();
        assert_eq!(a.manifest_digest, c.manifest_digest);
        assert_ne!(a.bytes, c.bytes);
    }

    #[test]
    fn references_and_paths_are_validated() {
        assert_eq!(reference_tag("localhost/pause:3.6").unwrap(), "3.6");
        assert_eq!(reference_tag("localhost:5000/x").unwrap(), "latest");
        assert_eq!(reference_tag("localhost:5000/x:v1").unwrap(), "v1");
        assert!(reference_tag("").is_err());
        assert!(reference_tag("localhost/x@sha256:00").is_err());
        assert!(reference_tag("localhost/x:").is_err());
        let bad = [ImageFile::file("../etc/x", b"".to_vec(), 0o644)];
        assert!(matches!(
            build_layer(&bad),
            Err(ImageError::LayerPath(p)) if p == "../etc/x"
        ));
        assert!(build_layer(&[ImageFile::dir("/", 0o755)]).is_err());
    }

    #[test]
    fn base_images_have_expected_content() {
        let archives = base_image_archives(b"BUSYBOX".to_vec()).unwrap();
        assert_eq!(archives.len(), 2);
        let (name, bb) = &archives[0];
        assert_eq!(*name, "busybox.tar");
        let ents = entries(&bb.bytes);
        let index = json_of(&ents["index.json"].2);
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            BUSYBOX_IMAGE
        );
        let config = json_of(blob(&ents, &bb.config_digest));
        assert_eq!(config["config"]["Cmd"], json!(["sh"]));
        assert_eq!(
            config["config"]["Env"],
            json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        );
        let layer = entries(blob(&ents, &bb.layer_digest));
        assert_eq!(layer["bin/busybox"].2, b"BUSYBOX");
        for applet in [
            "sh", "httpd", "sleep", "wget", "nc", "echo", "cat", "ls", "ps", "ip", "hostname",
            "id", "env", "mkdir", "touch", "rm", "head", "tail", "grep", "sed", "awk", "date",
            "kill", "df", "du", "free", "uname", "printf", "test", "seq", "tee", "wc", "sort",
            "cut", "tr", "xargs", "find", "cp", "mv", "ln", "pwd", "nslookup", "ping", "stat",
            "timeout", "dd", "yes", "true", "false",
        ] {
            let e = &layer[&format!("bin/{applet}")];
            assert_eq!(
                (e.0, e.2.as_slice()),
                (tar::EntryType::Symlink, &b"busybox"[..]),
                "{applet}"
            );
        }
        assert_eq!(layer["tmp/"].1, 0o1777);
        for d in ["proc/", "sys/", "dev/", "etc/", "root/"] {
            assert_eq!(layer[d].0, tar::EntryType::Directory, "{d}");
        }
        let passwd = String::from_utf8(layer["etc/passwd"].2.clone()).unwrap();
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains("\nnobody:x:65534:65534:"));

        let (name, pause) = &archives[1];
        assert_eq!(*name, "pause.tar");
        let ents = entries(&pause.bytes);
        let index = json_of(&ents["index.json"].2);
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            PAUSE_IMAGE
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "3.6"
        );
        let config = json_of(blob(&ents, &pause.config_digest));
        assert_eq!(
            config["config"]["Entrypoint"],
            json!(["/bin/sh", "-c", PAUSE_SCRIPT])
        );
        // Same rootfs: the layer is shared between the two images.
        assert_eq!(pause.layer_digest, bb.layer_digest);
    }

    #[test]
    fn build_base_images_writes_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let bb = dir.path().join("busybox");
        std::fs::write(&bb, b"BIN").unwrap();
        let out = dir.path().join("images");
        let paths = build_base_images(&out, &bb).unwrap();
        assert_eq!(paths, vec![out.join("busybox.tar"), out.join("pause.tar")]);
        let expected = base_image_archives(b"BIN".to_vec()).unwrap();
        assert_eq!(std::fs::read(&paths[0]).unwrap(), expected[0].1.bytes);
        assert_eq!(std::fs::read(&paths[1]).unwrap(), expected[1].1.bytes);
        let err = build_base_images(&out, &dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().starts_with("read busybox binary "), "{err}");
    }
}
