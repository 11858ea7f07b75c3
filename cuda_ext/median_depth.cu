// Median depth of a Gaussian render (gs_recon; gsplat has no such mode).
//
// median[c, y, x] = camera-space depth of the Gaussian at which the pixel's transmittance first falls
// to <= 0.5; where it never does, the depth of the last Gaussian that contributed (0 where none did).
// The same definition as gs_recon's C++ backend (render/csrc/raster_cpu.cpp, rasterize_fwd's `median`)
// and the torch reference (render/rasterize_ref.py). Inputs are gsplat's projection and tile lists
// (non-packed): means2d [C,N,2], conics [C,N,3], opacities [N] (or [C,N] with op_per_camera), depths [C,N], isect_offsets [C,TH,TW]
// int32, flatten_ids [M] int32 (c*N + g); alpha cut-offs (1/255, 0.999) and early stop (T <= 1e-4) as
// gsplat's forward rasterizer, so the median belongs to the image gsplat rendered.
//
// One block per tile, one thread per pixel, Gaussians staged in shared memory in batches; a pixel is
// finished as soon as its median is found, and the block stops once every pixel is.

#include <cuda_runtime.h>
#include <cstdint>

namespace gs_recon_cuda {

template <int TILE>
__global__ void median_depth_kernel(const int N, const int width, const int height, const int tile_w,
                                    const int tile_h, const float2* __restrict__ means2d,
                                    const float3* __restrict__ conics, const float* __restrict__ opacities, const bool op_per_camera,
                                    const float* __restrict__ depths, const int32_t* __restrict__ isect_offsets,
                                    const int32_t* __restrict__ flatten_ids, const int32_t n_isects,
                                    float* __restrict__ median) {
  constexpr int BLOCK = TILE * TILE;
  constexpr float kAlphaMin = 1.f / 255.f, kAlphaMax = 0.999f, kTMin = 1e-4f;
  __shared__ float3 s_xy_op[BLOCK];
  __shared__ float3 s_conic[BLOCK];
  __shared__ float s_depth[BLOCK];

  const int n_tiles = tile_w * tile_h;
  const int cam = blockIdx.y;
  const int tile_id = blockIdx.x;
  const int tx = tile_id % tile_w, ty = tile_id / tile_w;
  const int tr = threadIdx.y * TILE + threadIdx.x;
  const int px = tx * TILE + threadIdx.x, py = ty * TILE + threadIdx.y;
  const float fx = px + 0.5f, fy = py + 0.5f;
  const bool inside = px < width && py < height;
  bool done = !inside;
  const int32_t cam_base = cam * N;

  const int32_t start = isect_offsets[cam * n_tiles + tile_id];
  const bool last_tile = (cam == gridDim.y - 1) && (tile_id == n_tiles - 1);
  const int32_t end = last_tile ? n_isects : isect_offsets[cam * n_tiles + tile_id + 1];
  const int n_batches = (end - start + BLOCK - 1) / BLOCK;
  float T = 1.f, med = 0.f;

  for (int b = 0; b < n_batches; ++b) {
    if (__syncthreads_count(done) >= BLOCK) break;
    const int idx = start + b * BLOCK + tr;
    if (idx < end) {
      const int32_t gid = flatten_ids[idx];
      const float2 xy = means2d[gid];
      s_xy_op[tr] = make_float3(xy.x, xy.y, opacities[op_per_camera ? gid : gid - cam_base]);
      s_conic[tr] = conics[gid];
      s_depth[tr] = depths[gid];
    }
    __syncthreads();
    const int bsize = min(BLOCK, end - start - b * BLOCK);
    for (int t = 0; t < bsize && !done; ++t) {
      const float3 xo = s_xy_op[t];
      const float3 cn = s_conic[t];
      const float dx = xo.x - fx, dy = xo.y - fy;
      const float sigma = 0.5f * (cn.x * dx * dx + cn.z * dy * dy) + cn.y * dx * dy;
      const float a = fminf(kAlphaMax, xo.z * __expf(-sigma));
      if (sigma < 0.f || a < kAlphaMin) continue;
      const float nT = T * (1.f - a);
      if (nT <= kTMin) {
        done = true;
        break;
      }
      med = s_depth[t];  // the last contributing Gaussian so far
      T = nT;
      if (nT <= 0.5f) done = true;  // transmittance crossed 0.5: this is the median
    }
    __syncthreads();
  }
  if (inside) median[(cam * height + py) * width + px] = med;
}

void launch_median_depth(int C, int N, int width, int height, int tile, int tile_w, int tile_h,
                         const float* means2d, const float* conics, const float* opacities, bool op_per_camera, const float* depths,
                         const int32_t* isect_offsets, const int32_t* flatten_ids, int32_t n_isects, float* median,
                         cudaStream_t stream) {
  const dim3 grid(tile_h * tile_w, C);
  if (grid.x == 0 || grid.y == 0) return;
  if (tile == 16) {
    median_depth_kernel<16><<<grid, dim3(16, 16), 0, stream>>>(
        N, width, height, tile_w, tile_h, reinterpret_cast<const float2*>(means2d),
        reinterpret_cast<const float3*>(conics), opacities, op_per_camera, depths, isect_offsets, flatten_ids, n_isects, median);
  } else {
    median_depth_kernel<8><<<grid, dim3(8, 8), 0, stream>>>(
        N, width, height, tile_w, tile_h, reinterpret_cast<const float2*>(means2d),
        reinterpret_cast<const float3*>(conics), opacities, op_per_camera, depths, isect_offsets, flatten_ids, n_isects, median);
  }
}

}  // namespace gs_recon_cuda
