//! Multiplies one weight matrix of a GGUF file with input rows read from a raw f32 file and
//! writes the products as raw f32, to compare our kernels with another implementation's
//! output bit for bit: `cargo run --release -p fmlab-nn --example matmul -- MODEL.gguf TENSOR
//! IN.f32 N OUT.f32 [THREADS]`.

use fmlab_formats::GgufFile;
use fmlab_kernels::Threads;
use fmlab_nn::gguf_matrix;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, tensor, input, n, output, rest @ ..] = &args[..] else {
        return Err("usage: matmul MODEL.gguf TENSOR IN.f32 N OUT.f32 [THREADS]".into());
    };
    let threads = Threads(rest.first().map(|t| t.parse()).transpose()?.unwrap_or(1));
    let file = GgufFile::open(model)?;
    let w = gguf_matrix(&file, tensor)?;
    let n: usize = n.parse()?;
    let x: Vec<f32> = std::fs::read(input)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if x.len() != n * w.cols {
        return Err(format!("{input}: {} values, expected {n} × {}", x.len(), w.cols).into());
    }
    let mut y = vec![0f32; n * w.rows];
    w.matmul(&x, &mut y, threads)?;
    let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(output, bytes)?;
    Ok(())
}
