// PyTorch bindings of gs_recon's CUDA kernels (visibility.cu, median_depth.cu).
#include <torch/extension.h>
#include <array>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that pulls in cuSPARSE/cuBLAS headers

namespace gs_recon_cuda {
void launch_accumulate_visibility(int C, int N, int width, int height, int tile, int tile_w, int tile_h,
                                  const float* means2d, const float* conics, const float* opacities, bool op_per_camera,
                                  const int32_t* isect_offsets, const int32_t* flatten_ids, int32_t n_isects,
                                  float thresh, float* weight_sum, float* alpha_sum, int32_t* count,
                                  cudaStream_t stream);
void launch_median_depth(int C, int N, int width, int height, int tile, int tile_w, int tile_h,
                         const float* means2d, const float* conics, const float* opacities, bool op_per_camera, const float* depths,
                         const int32_t* isect_offsets, const int32_t* flatten_ids, int32_t n_isects, float* median,
                         cudaStream_t stream);
}

#define CHECK_INPUT(x, dt)                                                                     \
  TORCH_CHECK((x).is_cuda(), #x " must be a CUDA tensor");                                    \
  TORCH_CHECK((x).is_contiguous(), #x " must be contiguous");                                 \
  TORCH_CHECK((x).scalar_type() == (dt), #x " has the wrong dtype")

// The inputs both kernels share: gsplat's non-packed projection and tile lists. Returns (C, N, tile_w, tile_h).
static std::array<int64_t, 4> check_common(const torch::Tensor& means2d, const torch::Tensor& conics,
                                           const torch::Tensor& opacities, const torch::Tensor& isect_offsets,
                                           const torch::Tensor& flatten_ids, int64_t width, int64_t height,
                                           int64_t tile) {
  CHECK_INPUT(means2d, torch::kFloat32);
  CHECK_INPUT(conics, torch::kFloat32);
  CHECK_INPUT(opacities, torch::kFloat32);
  CHECK_INPUT(isect_offsets, torch::kInt32);
  CHECK_INPUT(flatten_ids, torch::kInt32);
  TORCH_CHECK(tile == 8 || tile == 16, "tile size must be 8 or 16, got ", tile);
  TORCH_CHECK(means2d.dim() == 3 && means2d.size(2) == 2, "means2d must be [C, N, 2]");
  const int64_t C = means2d.size(0), N = means2d.size(1);
  TORCH_CHECK(C * N < (int64_t(1) << 31), "C * N must fit in int32 (flatten ids); pass fewer cameras at once");
  TORCH_CHECK(conics.sizes() == torch::IntArrayRef({C, N, 3}), "conics must be [C, N, 3]");
  TORCH_CHECK(opacities.sizes() == torch::IntArrayRef({N}) || opacities.sizes() == torch::IntArrayRef({C, N}),
              "opacities must be [N] (shared by the cameras) or [C, N]");
  const int64_t tile_w = (width + tile - 1) / tile, tile_h = (height + tile - 1) / tile;
  TORCH_CHECK(isect_offsets.sizes() == torch::IntArrayRef({C, tile_h, tile_w}), "isect_offsets must be [C, ",
              tile_h, ", ", tile_w, "]");
  return {C, N, tile_w, tile_h};
}

// -> (weight_sum [C,N] f32, count [C,N] i32, alpha_sum [C,N] f32), per camera
std::vector<torch::Tensor> accumulate_visibility(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                                 torch::Tensor isect_offsets, torch::Tensor flatten_ids, int64_t width,
                                                 int64_t height, int64_t tile, double thresh) {
  const auto [C, N, tile_w, tile_h] = check_common(means2d, conics, opacities, isect_offsets, flatten_ids, width,
                                                   height, tile);
  const c10::cuda::CUDAGuard guard(means2d.device());
  auto opts = means2d.options();
  auto weight_sum = torch::zeros({C, N}, opts);
  auto alpha_sum = torch::zeros({C, N}, opts);
  auto count = torch::zeros({C, N}, opts.dtype(torch::kInt32));
  gs_recon_cuda::launch_accumulate_visibility(
      (int)C, (int)N, (int)width, (int)height, (int)tile, (int)tile_w, (int)tile_h, means2d.data_ptr<float>(),
      conics.data_ptr<float>(), opacities.data_ptr<float>(), opacities.dim() == 2, isect_offsets.data_ptr<int32_t>(),
      flatten_ids.data_ptr<int32_t>(), (int32_t)flatten_ids.numel(), (float)thresh, weight_sum.data_ptr<float>(),
      alpha_sum.data_ptr<float>(), count.data_ptr<int32_t>(), c10::cuda::getCurrentCUDAStream().stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {weight_sum, count, alpha_sum};
}

// depths [C,N] f32 -> median depth [C,H,W] f32 (no gradient)
torch::Tensor median_depth(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities, torch::Tensor depths,
                           torch::Tensor isect_offsets, torch::Tensor flatten_ids, int64_t width, int64_t height,
                           int64_t tile) {
  const auto [C, N, tile_w, tile_h] = check_common(means2d, conics, opacities, isect_offsets, flatten_ids, width,
                                                   height, tile);
  CHECK_INPUT(depths, torch::kFloat32);
  TORCH_CHECK(depths.sizes() == torch::IntArrayRef({C, N}), "depths must be [C, N]");
  const c10::cuda::CUDAGuard guard(means2d.device());
  auto median = torch::zeros({C, height, width}, means2d.options());
  gs_recon_cuda::launch_median_depth((int)C, (int)N, (int)width, (int)height, (int)tile, (int)tile_w, (int)tile_h,
                                     means2d.data_ptr<float>(), conics.data_ptr<float>(), opacities.data_ptr<float>(), opacities.dim() == 2,
                                     depths.data_ptr<float>(), isect_offsets.data_ptr<int32_t>(),
                                     flatten_ids.data_ptr<int32_t>(), (int32_t)flatten_ids.numel(),
                                     median.data_ptr<float>(), c10::cuda::getCurrentCUDAStream().stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return median;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("accumulate_visibility", &accumulate_visibility,
        "per-view, per-Gaussian visibility (sum alpha*T, count, sum alpha) from gsplat's projection and tile lists");
  m.def("median_depth", &median_depth, "median depth [C,H,W] from gsplat's projection and tile lists");
}
