// Per-Gaussian, per-view visibility accumulator (gs_recon, DP-Recon on Gaussian splatting).
//
// For every camera c and Gaussian g, over the pixels of camera c:
//   weight_sum[c, g] = sum alpha_g * T_g   (its compositing weight)
//   alpha_sum[c, g]  = sum alpha_g         (what it would add with nothing in front: the normaliser)
//   count[c, g]      = #pixels with alpha_g * T_g > thresh
// Inputs are gsplat's projection and tile-intersection outputs (non-packed): means2d [C,N,2],
// conics [C,N,3], opacities [N] (or [C,N] with op_per_camera), isect_offsets [C,TH,TW] int32, flatten_ids [M] int32 (c*N + g).
// Outputs are indexed by the flattened id c*N + g, so no integer division is needed anywhere in the
// Gaussian loop; the caller sums over cameras (all-view visibility) or takes the best view's ratio.
// Same tiling, alpha cut-offs (1/255, 0.999) and early stop (T <= 1e-4) as gsplat's forward rasterizer.
//
// One block per tile, one thread per pixel; Gaussians are staged in shared memory in batches of one per
// thread (as gsplat's forward rasterizer does). All 32 lanes of a warp visit the same Gaussian at the
// same time: a warp where no lane was touched skips the reduction (one vote), else its lanes' values are
// summed with shuffles and lane 0 adds them to the block's shared accumulators for that Gaussian; at the
// end of the batch each Gaussian's block total goes to global memory with one atomic per output
// (a 16x16 tile: 8 warps -> up to 8x fewer global atomics than per-warp flushing, 256x fewer than
// per-pixel accumulation, which is what the autograd route does in effect).

#include <cuda_runtime.h>
#include <cstdint>

namespace gs_recon_cuda {

constexpr float kAlphaMin = 1.f / 255.f;
constexpr float kAlphaMax = 0.999f;
constexpr float kTMin = 1e-4f;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ int warp_sum_int(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <int TILE>
__global__ void accumulate_visibility_kernel(
    const int N, const int width, const int height, const int tile_w, const int tile_h,
    const float2* __restrict__ means2d, const float3* __restrict__ conics, const float* __restrict__ opacities, const bool op_per_camera,
    const int32_t* __restrict__ isect_offsets, const int32_t* __restrict__ flatten_ids, const int32_t n_isects,
    const float thresh, float* __restrict__ weight_sum, float* __restrict__ alpha_sum, int32_t* __restrict__ count) {
  constexpr int BLOCK = TILE * TILE;
  __shared__ int32_t s_id[BLOCK];
  __shared__ float3 s_xy_op[BLOCK];
  __shared__ float3 s_conic[BLOCK];
  __shared__ float s_w[BLOCK];
  __shared__ float s_a[BLOCK];
  __shared__ int32_t s_c[BLOCK];

  const int n_tiles = tile_w * tile_h;
  const int cam = blockIdx.y;  // grid (n_tiles, C): no division for the camera
  const int tile_id = blockIdx.x;
  const int tx = tile_id % tile_w, ty = tile_id / tile_w;  // once per thread, outside the loops
  const int tr = threadIdx.y * TILE + threadIdx.x;
  const int px = tx * TILE + threadIdx.x, py = ty * TILE + threadIdx.y;
  const float fx = px + 0.5f, fy = py + 0.5f;
  bool done = !(px < width && py < height);
  const int32_t cam_base = cam * N;  // flatten id -> Gaussian index: g = id - cam_base

  const int32_t start = isect_offsets[cam * n_tiles + tile_id];
  const bool last_tile = (cam == gridDim.y - 1) && (tile_id == n_tiles - 1);
  const int32_t end = last_tile ? n_isects : isect_offsets[cam * n_tiles + tile_id + 1];
  const int n_batches = (end - start + BLOCK - 1) / BLOCK;
  const int lane = tr & 31;
  float T = 1.f;

  for (int b = 0; b < n_batches; ++b) {
    // everyone in the block finished: stop (the same test gsplat uses)
    if (__syncthreads_count(done) >= BLOCK) break;
    const int idx = start + b * BLOCK + tr;
    if (idx < end) {
      const int32_t gid = flatten_ids[idx];
      s_id[tr] = gid;
      const float2 xy = means2d[gid];
      s_xy_op[tr] = make_float3(xy.x, xy.y, opacities[op_per_camera ? gid : gid - cam_base]);
      s_conic[tr] = conics[gid];
    }
    s_w[tr] = 0.f;
    s_a[tr] = 0.f;
    s_c[tr] = 0;
    __syncthreads();
    const int bsize = min(BLOCK, end - start - b * BLOCK);
    for (int t = 0; t < bsize; ++t) {
      float w = 0.f, a_out = 0.f;
      int c = 0;
      if (!done) {
        const float3 xo = s_xy_op[t];
        const float3 cn = s_conic[t];
        const float dx = xo.x - fx, dy = xo.y - fy;
        const float sigma = 0.5f * (cn.x * dx * dx + cn.z * dy * dy) + cn.y * dx * dy;
        const float a = fminf(kAlphaMax, xo.z * __expf(-sigma));
        if (sigma >= 0.f && a >= kAlphaMin) {
          const float nT = T * (1.f - a);
          if (nT <= kTMin) {
            done = true;
          } else {
            w = a * T;
            a_out = a;
            c = w > thresh ? 1 : 0;
            T = nT;
          }
        }
      }
      // a warp none of whose pixels this Gaussian touched adds nothing: one vote, no shuffles
      if (!__any_sync(0xffffffffu, a_out > 0.f)) continue;
      const float ws = warp_sum(w);
      const float as = warp_sum(a_out);
      const int cs = warp_sum_int(c);
      if (lane == 0) {
        atomicAdd(s_w + t, ws);
        atomicAdd(s_a + t, as);
        if (cs) atomicAdd(s_c + t, cs);
      }
    }
    __syncthreads();
    // the block's totals for this batch: one global atomic per Gaussian and output
    if (tr < bsize && s_a[tr] > 0.f) {
      const int32_t gid = s_id[tr];
      atomicAdd(weight_sum + gid, s_w[tr]);
      atomicAdd(alpha_sum + gid, s_a[tr]);
      if (s_c[tr]) atomicAdd(count + gid, s_c[tr]);
    }
  }
}

void launch_accumulate_visibility(int C, int N, int width, int height, int tile, int tile_w, int tile_h,
                                  const float* means2d, const float* conics, const float* opacities, bool op_per_camera,
                                  const int32_t* isect_offsets, const int32_t* flatten_ids, int32_t n_isects,
                                  float thresh, float* weight_sum, float* alpha_sum, int32_t* count,
                                  cudaStream_t stream) {
  const dim3 grid(tile_h * tile_w, C);
  if (grid.x == 0 || grid.y == 0) return;
  if (tile == 16) {
    accumulate_visibility_kernel<16><<<grid, dim3(16, 16), 0, stream>>>(
        N, width, height, tile_w, tile_h, reinterpret_cast<const float2*>(means2d),
        reinterpret_cast<const float3*>(conics), opacities, op_per_camera, isect_offsets, flatten_ids, n_isects, thresh,
        weight_sum, alpha_sum, count);
  } else {  // tile == 8 (checked by the binding)
    accumulate_visibility_kernel<8><<<grid, dim3(8, 8), 0, stream>>>(
        N, width, height, tile_w, tile_h, reinterpret_cast<const float2*>(means2d),
        reinterpret_cast<const float3*>(conics), opacities, op_per_camera, isect_offsets, flatten_ids, n_isects, thresh,
        weight_sum, alpha_sum, count);
  }
}

}  // namespace gs_recon_cuda
