//! A spec described for people: the rows of `fmlab inspect`'s architecture section (family,
//! sizes, attention, feed-forward, norms, positions, biases, embeddings, sliding window).

use crate::units::grouped;
use crate::{ModelSpec, Positions};

impl ModelSpec {
    /// The architecture as (label, text) rows.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let spec = self;
        let mut biases = Vec::new();
        for (on, name) in [
            (spec.qkv_bias, "q/k/v"),
            (spec.attn_out_bias, "attention output"),
            (spec.mlp_bias, "MLP"),
        ] {
            if on {
                biases.push(name);
            }
        }
        let mut rows = vec![
            ("family", spec.architecture.clone()),
            ("vocabulary", grouped(spec.vocab_size)),
            ("context", grouped(spec.context_length)),
            ("d_model", grouped(spec.d_model)),
            ("layers", grouped(spec.n_layers)),
            (
                "heads",
                format!(
                    "{} query / {} key-value, head dim {} ({})",
                    spec.n_heads,
                    spec.n_kv_heads,
                    spec.head_dim,
                    spec.attention_kind()
                ),
            ),
            (
                "feed-forward",
                format!(
                    "{} wide, {}",
                    grouped(spec.ffn_dim),
                    spec.ffn_kind.describe()
                ),
            ),
            (
                "norms",
                format!(
                    "{}, {}, eps {:e}{}",
                    spec.norm_kind.describe(),
                    spec.norm_placement.describe(),
                    spec.norm_eps,
                    if spec.qk_norm { ", QK-norm" } else { "" }
                ),
            ),
            (
                "positions",
                match spec.positions {
                    Positions::Learned => "learned".into(),
                    Positions::Rope { base } => format!("RoPE, base {base}"),
                },
            ),
            (
                "biases",
                if biases.is_empty() {
                    "none".into()
                } else {
                    biases.join(", ")
                },
            ),
            (
                "embeddings",
                format!(
                    "{}{}",
                    if spec.tied_embeddings {
                        "tied"
                    } else {
                        "untied"
                    },
                    if spec.scale_embeddings {
                        ", scaled by √d_model"
                    } else {
                        ""
                    }
                ),
            ),
        ];
        if let Some(w) = spec.sliding_window {
            let pattern = if w.global_every == 0 {
                "every layer local".to_string()
            } else {
                format!("every {}th layer global", w.global_every)
            };
            let local_base = w
                .local_rope_base
                .map(|b| format!(", local RoPE base {b}"))
                .unwrap_or_default();
            rows.push((
                "sliding window",
                format!("{} tokens, {pattern}{local_base}", w.window),
            ));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use crate::preset;

    #[test]
    fn summary_rows_name_the_architecture() {
        let rows = preset("llama2-7b").unwrap().summary();
        let row = |label: &str| {
            rows.iter()
                .find(|(k, _)| *k == label)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {label} row"))
        };
        assert_eq!(row("d_model"), "4,096");
        assert_eq!(
            row("heads"),
            "32 query / 32 key-value, head dim 128 (multi-head)"
        );
        assert_eq!(row("feed-forward"), "11,008 wide, SwiGLU");
        assert_eq!(row("positions"), "RoPE, base 10000");
        assert_eq!(row("biases"), "none");
        assert!(rows.iter().all(|(k, _)| *k != "sliding window"));
    }
}
