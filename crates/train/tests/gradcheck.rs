//! Gradients against central finite differences in f64: the LoRA layer alone, and LoRA
//! inside the whole (tiny) decoder with the differentiable kernels (RMSNorm, rotary, softmax).

mod common;

use candle_core::{DType, Device, Module, Tensor, Var};
use easel_model::checkpoint::CheckpointFiles;
use easel_model::layers::{Kernels, Linear, LoraDelta};
use easel_model::rope::mrope_positions;
use easel_model::Qwen2VlModel;
use easel_train::trainable::causal_mask;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Largest relative error between autograd and central differences over `indices` of `var`.
fn check(var: &Var, indices: &[usize], loss: &dyn Fn() -> f64, analytic: &Tensor) -> f64 {
    let eps = 1e-6;
    let analytic = analytic.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let original = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let shape = var.as_tensor().shape().clone();
    let mut worst = 0f64;
    for &i in indices {
        let mut bumped = original.clone();
        bumped[i] += eps;
        var.set(&Tensor::from_vec(bumped.clone(), &shape, &Device::Cpu).unwrap()).unwrap();
        let up = loss();
        bumped[i] -= 2.0 * eps;
        var.set(&Tensor::from_vec(bumped, &shape, &Device::Cpu).unwrap()).unwrap();
        let down = loss();
        var.set(&Tensor::from_vec(original.clone(), &shape, &Device::Cpu).unwrap()).unwrap();
        let numeric = (up - down) / (2.0 * eps);
        let err = (numeric - analytic[i]).abs() / numeric.abs().max(analytic[i].abs()).max(1e-3);
        worst = worst.max(err);
    }
    worst
}

#[test]
fn lora_layer_gradients_match_finite_differences() {
    let (inp, out, rank) = (12, 10, 3);
    let a = Var::from_tensor(&randn(&[rank, inp], 1)).unwrap();
    let b = Var::from_tensor(&(randn(&[out, rank], 2) * 0.5).unwrap()).unwrap();
    let x = Var::from_tensor(&randn(&[2, 5, inp], 3)).unwrap();
    let mut layer = Linear::new(randn(&[out, inp], 4), Some(randn(&[out], 5)));
    layer.set_lora(Some(LoraDelta { a: a.as_tensor().clone(), b: b.as_tensor().clone(), scale: 2.0 }));
    let r = randn(&[2, 5, out], 6);
    let loss_t = || layer.forward(x.as_tensor()).unwrap().mul(&r).unwrap().sqr().unwrap().sum_all().unwrap();
    let grads = loss_t().backward().unwrap();
    let loss = || loss_t().to_scalar::<f64>().unwrap();
    let all = |v: &Var| (0..v.as_tensor().elem_count()).collect::<Vec<_>>();
    let ea = check(&a, &all(&a), &loss, grads.get(a.as_tensor()).unwrap());
    let eb = check(&b, &all(&b), &loss, grads.get(b.as_tensor()).unwrap());
    let ex = check(&x, &all(&x), &loss, grads.get(x.as_tensor()).unwrap());
    eprintln!("LoRA layer, max relative gradient error: A {ea:e}, B {eb:e}, x {ex:e}");
    assert!(ea < 1e-6 && eb < 1e-6 && ex < 1e-6);
}

#[test]
fn lora_gradients_through_the_decoder_match_finite_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::tiny_checkpoint(tmp.path(), 6);
    let files = CheckpointFiles::locate(&dir).unwrap();
    let config = files.read_config().unwrap();
    let mut model = Qwen2VlModel::load(&files, &config, &Device::Cpu, DType::F64).unwrap();
    model.set_kernels(Kernels::Differentiable);
    let h = config.text.hidden_size;
    let a = Var::from_tensor(&(randn(&[4, h], 7) * 0.1).unwrap()).unwrap();
    let b = Var::from_tensor(&(randn(&[h, 4], 8) * 0.1).unwrap()).unwrap();
    {
        let (_, q) = easel_model::lora::projections(&mut model, false)
            .into_iter()
            .find(|(name, _)| name == "model.layers.0.self_attn.o_proj")
            .unwrap();
        q.set_lora(Some(LoraDelta { a: a.as_tensor().clone(), b: b.as_tensor().clone(), scale: 1.5 }));
    }
    let ids: Vec<u32> = vec![5, 80, 81, 99, 3, 200, 17, 42];
    let positions = mrope_positions(&ids, config.image_token_id, &[], 2).unwrap();
    let rope = model.text.rope(std::slice::from_ref(&positions.ids)).unwrap();
    let mask = causal_mask(1, ids.len(), DType::F64, &Device::Cpu).unwrap();
    let r = randn(&[1, ids.len(), h], 9);
    let loss_t = || {
        let embeds = model.embed_with_images(std::slice::from_ref(&ids), None).unwrap();
        let hidden = model.text.forward_embeds(&embeds, &rope, Some(&mask), None, None).unwrap();
        hidden.mul(&r).unwrap().sum_all().unwrap()
    };
    let grads = loss_t().backward().unwrap();
    let loss = || loss_t().to_scalar::<f64>().unwrap();
    let picks: Vec<usize> = (0..4 * h).step_by(7).collect();
    let ea = check(&a, &picks, &loss, grads.get(a.as_tensor()).unwrap());
    let eb = check(&b, &picks, &loss, grads.get(b.as_tensor()).unwrap());
    eprintln!("LoRA in the decoder (f64), max relative gradient error: A {ea:e}, B {eb:e}");
    assert!(ea < 1e-5 && eb < 1e-5);
}
