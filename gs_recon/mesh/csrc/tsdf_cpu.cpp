// TSDF integration on the CPU: for every voxel and every view, projective signed distance
// sdf = depth(pixel) - z(voxel), used where depth > 0 and sdf > -trunc, clamped to [-1, 1] after
// dividing by trunc; sums of values, weights and colours are accumulated in place.
//   tsdf_sum [X*Y*Z], weight [X*Y*Z], color_sum [X*Y*Z, 3] (or empty), depths [V, H, W] (0 = no data),
//   colors [V, H, W, 3] (or empty), Ks [V, 3, 3], viewmats [V, 4, 4] (OpenCV world-to-camera).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <cmath>

void tsdf_integrate(at::Tensor tsdf_sum, at::Tensor weight, at::Tensor color_sum, at::Tensor depths,
                    at::Tensor colors, at::Tensor Ks, at::Tensor viewmats, double lox, double loy, double loz,
                    double voxel, int64_t X, int64_t Y, int64_t Z, double trunc) {
  depths = depths.contiguous();
  Ks = Ks.contiguous();
  viewmats = viewmats.contiguous();
  const bool with_color = colors.numel() > 0;
  if (with_color) colors = colors.contiguous();
  const int64_t V = depths.size(0), H = depths.size(1), W = depths.size(2);
  const float* dp = depths.data_ptr<float>();
  const float* cp = with_color ? colors.data_ptr<float>() : nullptr;
  const float* kp = Ks.data_ptr<float>();
  const float* vp = viewmats.data_ptr<float>();
  float* ts = tsdf_sum.data_ptr<float>();
  float* ws = weight.data_ptr<float>();
  float* cs = with_color ? color_sum.data_ptr<float>() : nullptr;
  const float tr = (float)trunc;
  at::parallel_for(0, X * Y * Z, 4096, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const int64_t i = n / (Y * Z), j = (n / Z) % Y, k = n % Z;
      const float px = (float)(lox + (i + 0.5) * voxel), py = (float)(loy + (j + 0.5) * voxel),
                  pz = (float)(loz + (k + 0.5) * voxel);
      float s = 0.f, w = 0.f, c0 = 0.f, c1 = 0.f, c2 = 0.f;
      for (int64_t v = 0; v < V; ++v) {
        const float* M = vp + v * 16;
        const float x = M[0] * px + M[1] * py + M[2] * pz + M[3];
        const float y = M[4] * px + M[5] * py + M[6] * pz + M[7];
        const float z = M[8] * px + M[9] * py + M[10] * pz + M[11];
        if (z <= 1e-4f) continue;
        const float* K = kp + v * 9;
        const float uf = std::floor(K[0] * x / z + K[2]), vf = std::floor(K[4] * y / z + K[5]);
        if (uf < 0 || vf < 0 || uf >= W || vf >= H) continue;
        const int64_t pix = (v * H + (int64_t)vf) * W + (int64_t)uf;
        const float d = dp[pix];
        if (d <= 0.f) continue;
        const float sdf = d - z;
        if (sdf <= -tr) continue;
        s += std::fmin(1.f, std::fmax(-1.f, sdf / tr));
        w += 1.f;
        if (with_color) {
          c0 += cp[pix * 3];
          c1 += cp[pix * 3 + 1];
          c2 += cp[pix * 3 + 2];
        }
      }
      ts[n] += s;
      ws[n] += w;
      if (with_color) {
        cs[n * 3] += c0;
        cs[n * 3 + 1] += c1;
        cs[n * 3 + 2] += c2;
      }
    }
  });
}
