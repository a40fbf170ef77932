//! Compiles `kernels/easel.cu` to PTX when the `cuda` feature is on (CPU builds, the default,
//! need no CUDA toolkit).

fn main() {
    println!("cargo:rerun-if-changed=kernels/easel.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=NVCC");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("easel_kernels.ptx");
    let nvcc = std::env::var("NVCC").ok().or_else(|| {
        std::env::var("CUDA_ROOT").ok().map(|root| format!("{root}/bin/nvcc"))
    }).unwrap_or_else(|| "nvcc".to_string());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".to_string());
    let status = std::process::Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=compute_{cap}"))
        .arg("kernels/easel.cu")
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {nvcc}: {e} (set NVCC or CUDA_ROOT)"));
    assert!(status.success(), "nvcc failed on kernels/easel.cu");
}
