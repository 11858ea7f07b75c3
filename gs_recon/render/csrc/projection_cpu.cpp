// EWA projection of 3D Gaussians on the CPU, forward and backward: the maths of the torch reference
// gs_recon/render/projection.py::project_reference (gsplat's fully_fused_projection for pinhole cameras) in one
// pass per (camera, Gaussian), instead of ~200 small tensor ops forward and as many backward.
//
// Shapes (C cameras, N Gaussians):
//   means [N, 3]  quats [N, 4] (w, x, y, z; normalised here)  scales [N, 3] (linear)
//   viewmats [C, 4, 4] (OpenCV world-to-camera)  Ks [C, 3, 3]  opacities [C, N] or empty (no opacity-aware radii)
//   -> means2d [C, N, 2]  conics [C, N, 3]  depths [C, N]  radii [C, N, 2] int32
// Backward: v_means2d, v_conics, v_depths -> v_means [N, 3], v_quats [N, 4], v_scales [N, 3] (cameras fixed).
// No fast-math here (the extension's other files use it): non-finite parameters must give non-finite gradients,
// as autograd's do, so the trainer's NaN guard sees them, and the validity test must see NaN and Inf.
#pragma GCC optimize("no-fast-math")
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

namespace {

struct Cam {
  float R[9], t[3], fx, fy, cx, cy, lxp, lxn, lyp, lyn;
};

Cam camera(const float* vm, const float* K, int64_t width, int64_t height) {
  Cam c{};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) c.R[i * 3 + j] = vm[i * 4 + j];
    c.t[i] = vm[i * 4 + 3];
  }
  c.fx = K[0]; c.fy = K[4]; c.cx = K[2]; c.cy = K[5];
  const float tfx = 0.5f * width / c.fx, tfy = 0.5f * height / c.fy;
  c.lxp = (width - c.cx) / c.fx + 0.3f * tfx;
  c.lxn = c.cx / c.fx + 0.3f * tfx;
  c.lyp = (height - c.cy) / c.fy + 0.3f * tfy;
  c.lyn = c.cy / c.fy + 0.3f * tfy;
  return c;
}

// unit quaternion (w, x, y, z) of q (q / max(|q|, 1e-12), as F.normalize) and its norm
inline float normalise(const float* q, float* u) {
  const float n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const float d = std::max(n, 1e-12f);
  for (int i = 0; i < 4; ++i) u[i] = q[i] / d;
  return n;
}

inline void rotmat(const float* u, float* R) {
  const float w = u[0], x = u[1], y = u[2], z = u[3];
  R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z); R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z); R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y); R[7] = 2 * (y * z + w * x); R[8] = 1 - 2 * (x * x + y * y);
}

// Everything the forward computes for one (camera, Gaussian) that the backward needs again.
struct Proj {
  float u[4], qn, Rg[9], Mg[9];  // unit quaternion, |q|, R(q), R(q) diag(s)
  float Cc[9];                    // camera-space covariance R_v Mg Mg^T R_v^T
  float tx, ty, tz, tzs;          // camera-space centre, tz made safe (|tz| >= 1e-6)
  float rx, ry;                   // tx / tzs, ty / tzs clamped to the screen limits
  bool clx, cly;                  // whether the clamps bit
  float J[6];                     // [2, 3] perspective Jacobian
  float a, b, c, d, det_raw, det; // 2D covariance [[a, b], [c, d]] (+ eps2d), its determinant, clamped
};

inline void forward_one(const float* mean, const float* quat, const float* scale, const Cam& k, float eps2d, Proj& P) {
  P.qn = normalise(quat, P.u);
  rotmat(P.u, P.Rg);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) P.Mg[i * 3 + j] = P.Rg[i * 3 + j] * scale[j];
  float S[9], T[9];  // S = Mg Mg^T (world covariance), T = R_v S
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      S[i * 3 + j] = P.Mg[i * 3] * P.Mg[j * 3] + P.Mg[i * 3 + 1] * P.Mg[j * 3 + 1] + P.Mg[i * 3 + 2] * P.Mg[j * 3 + 2];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      T[i * 3 + j] = k.R[i * 3] * S[j] + k.R[i * 3 + 1] * S[3 + j] + k.R[i * 3 + 2] * S[6 + j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      P.Cc[i * 3 + j] = T[i * 3] * k.R[j * 3] + T[i * 3 + 1] * k.R[j * 3 + 1] + T[i * 3 + 2] * k.R[j * 3 + 2];
  P.tx = k.R[0] * mean[0] + k.R[1] * mean[1] + k.R[2] * mean[2] + k.t[0];
  P.ty = k.R[3] * mean[0] + k.R[4] * mean[1] + k.R[5] * mean[2] + k.t[1];
  P.tz = k.R[6] * mean[0] + k.R[7] * mean[1] + k.R[8] * mean[2] + k.t[2];
  P.tzs = std::abs(P.tz) < 1e-6f ? 1e-6f : P.tz;
  const float ux = P.tx / P.tzs, uy = P.ty / P.tzs;
  P.clx = ux < -k.lxn || ux > k.lxp;
  P.cly = uy < -k.lyn || uy > k.lyp;
  P.rx = std::min(std::max(ux, -k.lxn), k.lxp);
  P.ry = std::min(std::max(uy, -k.lyn), k.lyp);
  const float txc = P.tzs * P.rx, tyc = P.tzs * P.ry, z2 = P.tzs * P.tzs;
  P.J[0] = k.fx / P.tzs; P.J[1] = 0.f; P.J[2] = -k.fx * txc / z2;
  P.J[3] = 0.f; P.J[4] = k.fy / P.tzs; P.J[5] = -k.fy * tyc / z2;
  float JC[6];  // J Cc [2, 3]
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      JC[i * 3 + j] = P.J[i * 3] * P.Cc[j] + P.J[i * 3 + 1] * P.Cc[3 + j] + P.J[i * 3 + 2] * P.Cc[6 + j];
  P.a = JC[0] * P.J[0] + JC[1] * P.J[1] + JC[2] * P.J[2] + eps2d;
  P.b = JC[0] * P.J[3] + JC[1] * P.J[4] + JC[2] * P.J[5];
  P.c = JC[3] * P.J[0] + JC[4] * P.J[1] + JC[5] * P.J[2];
  P.d = JC[3] * P.J[3] + JC[4] * P.J[4] + JC[5] * P.J[5] + eps2d;
  P.det_raw = P.a * P.d - P.b * P.c;
  P.det = std::max(P.det_raw, 1e-10f);
}

}  // namespace

std::vector<torch::Tensor> project_fwd(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                       torch::Tensor viewmats, torch::Tensor Ks, torch::Tensor opacities,
                                       int64_t width, int64_t height, double eps2d, double near_plane,
                                       double far_plane) {
  means = means.contiguous(); quats = quats.contiguous(); scales = scales.contiguous();
  viewmats = viewmats.contiguous(); Ks = Ks.contiguous();
  const bool with_op = opacities.numel() > 0;
  if (with_op) opacities = opacities.contiguous();
  const int64_t C = viewmats.size(0), N = means.size(0);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto means2d = torch::empty({C, N, 2}, f32), conics = torch::empty({C, N, 3}, f32);
  auto depths = torch::empty({C, N}, f32);
  auto radii = torch::empty({C, N, 2}, torch::TensorOptions().dtype(torch::kInt32));
  const float *mp = means.data_ptr<float>(), *qp = quats.data_ptr<float>(), *sp = scales.data_ptr<float>(),
              *vp = viewmats.data_ptr<float>(), *kp = Ks.data_ptr<float>();
  const float* op = with_op ? opacities.data_ptr<float>() : nullptr;
  float *m2 = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *dp = depths.data_ptr<float>();
  int* rp = radii.data_ptr<int>();
  std::vector<Cam> cams(C);
  for (int64_t c = 0; c < C; ++c) cams[c] = camera(vp + c * 16, kp + c * 9, width, height);
  at::parallel_for(0, C * N, 1024, [&](int64_t b, int64_t e) {
    Proj P;
    for (int64_t cg = b; cg < e; ++cg) {
      const int64_t c = cg / N, n = cg % N;
      const Cam& k = cams[c];
      forward_one(mp + n * 3, qp + n * 4, sp + n * 3, k, (float)eps2d, P);
      const float mx = k.fx * P.tx / P.tzs + k.cx, my = k.fy * P.ty / P.tzs + k.cy;
      m2[cg * 2] = mx; m2[cg * 2 + 1] = my;
      cn[cg * 3] = P.d / P.det;
      cn[cg * 3 + 1] = -(P.b + P.c) / 2.0f / P.det;
      cn[cg * 3 + 2] = P.a / P.det;
      dp[cg] = P.tz;
      // radii: 3.33 sigma, or with the opacity the box where alpha can reach 1/255 (none below opacity 1/255)
      bool valid = P.det > 0.f && P.tz > (float)near_plane && P.tz < (float)far_plane && std::isfinite(mx) && std::isfinite(my);
      float extend = 3.33f;
      if (with_op) {
        const float o = op[cg];
        extend = std::min(std::sqrt(2.0f * std::log(std::max(o * 255.0f, 1.0f))), 3.33f);
        valid = valid && o >= 1.0f / 255.0f;
      }
      float rx = std::ceil(extend * std::sqrt(P.a)), ry = std::ceil(extend * std::sqrt(P.d));
      const bool inside = mx + rx > 0 && mx - rx < width && my + ry > 0 && my - ry < height;
      if (!(valid && inside) || !std::isfinite(rx) || !std::isfinite(ry)) rx = ry = 0.f;
      rp[cg * 2] = (int)std::min(rx, 1e6f);
      rp[cg * 2 + 1] = (int)std::min(ry, 1e6f);
    }
  });
  return {means2d, conics, depths, radii};
}

std::vector<torch::Tensor> project_bwd(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                       torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                       double eps2d, torch::Tensor v_means2d, torch::Tensor v_conics,
                                       torch::Tensor v_depths) {
  means = means.contiguous(); quats = quats.contiguous(); scales = scales.contiguous();
  viewmats = viewmats.contiguous(); Ks = Ks.contiguous();
  v_means2d = v_means2d.contiguous(); v_conics = v_conics.contiguous(); v_depths = v_depths.contiguous();
  const int64_t C = viewmats.size(0), N = means.size(0);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto v_means = torch::zeros({N, 3}, f32), v_quats = torch::zeros({N, 4}, f32), v_scales = torch::zeros({N, 3}, f32);
  const float *mp = means.data_ptr<float>(), *qp = quats.data_ptr<float>(), *sp = scales.data_ptr<float>(),
              *vp = viewmats.data_ptr<float>(), *kp = Ks.data_ptr<float>(), *gm = v_means2d.data_ptr<float>(),
              *gc = v_conics.data_ptr<float>(), *gd = v_depths.data_ptr<float>();
  float *om = v_means.data_ptr<float>(), *oq = v_quats.data_ptr<float>(), *os = v_scales.data_ptr<float>();
  std::vector<Cam> cams(C);
  for (int64_t c = 0; c < C; ++c) cams[c] = camera(vp + c * 16, kp + c * 9, width, height);
  // parallel over Gaussians, cameras in order inside: each Gaussian's gradient is written by one thread
  at::parallel_for(0, N, 512, [&](int64_t b, int64_t e) {
    Proj P;
    for (int64_t n = b; n < e; ++n) {
      float vS[9] = {0}, vmean[3] = {0, 0, 0};  // gradients of the world covariance and of the mean
      for (int64_t c = 0; c < C; ++c) {
        const int64_t cg = c * N + n;
        const Cam& k = cams[c];
        forward_one(mp + n * 3, qp + n * 4, sp + n * 3, k, (float)eps2d, P);
        // conics = [d, -(b + c) / 2, a] / det
        const float v0 = gc[cg * 3], v1 = gc[cg * 3 + 1], v2 = gc[cg * 3 + 2], det = P.det, det2 = det * det;
        const float v_det = P.det_raw >= 1e-10f
                                ? -v0 * P.d / det2 + v1 * (P.b + P.c) / (2.f * det2) - v2 * P.a / det2 : 0.f;
        const float va = v2 / det + v_det * P.d, vd = v0 / det + v_det * P.a;
        const float vb = -v1 / (2.f * det) - v_det * P.c, vc = -v1 / (2.f * det) - v_det * P.b;
        const float V[4] = {va, vb, vc, vd};
        // cov2d = J Cc J^T: v_J = (V + V^T) J Cc, v_Cc = J^T V J
        const float Vs[4] = {2 * va, vb + vc, vb + vc, 2 * vd};
        float JC[6], vJ[6], VJ[6];
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 3; ++j)
            JC[i * 3 + j] = P.J[i * 3] * P.Cc[j] + P.J[i * 3 + 1] * P.Cc[3 + j] + P.J[i * 3 + 2] * P.Cc[6 + j];
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 3; ++j) {
            vJ[i * 3 + j] = Vs[i * 2] * JC[j] + Vs[i * 2 + 1] * JC[3 + j];
            VJ[i * 3 + j] = V[i * 2] * P.J[j] + V[i * 2 + 1] * P.J[3 + j];  // V J [2, 3]
          }
        float vCc[9];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) vCc[i * 3 + j] = P.J[i] * VJ[j] + P.J[3 + i] * VJ[3 + j];
        // Cc = R_v S R_v^T: v_S += R_v^T v_Cc R_v
        float W[9];  // v_Cc R_v
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j)
            W[i * 3 + j] = vCc[i * 3] * k.R[j] + vCc[i * 3 + 1] * k.R[3 + j] + vCc[i * 3 + 2] * k.R[6 + j];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) vS[i * 3 + j] += k.R[i] * W[j] + k.R[3 + i] * W[3 + j] + k.R[6 + i] * W[6 + j];
        // J from tzs and the clamped ratios: J00 = fx / z, J02 = -fx rx / z, J11 = fy / z, J12 = -fy ry / z
        const float z = P.tzs, z2 = z * z;
        float v_z = -vJ[0] * k.fx / z2 - vJ[4] * k.fy / z2 + vJ[2] * k.fx * P.rx / z2 + vJ[5] * k.fy * P.ry / z2;
        const float v_rx = -vJ[2] * k.fx / z, v_ry = -vJ[5] * k.fy / z;
        float v_tx = 0.f, v_ty = 0.f, v_tz = 0.f;
        if (!P.clx) { v_tx += v_rx / z; v_z -= v_rx * P.tx / z2; }  // rx = tx / z unclamped
        if (!P.cly) { v_ty += v_ry / z; v_z -= v_ry * P.ty / z2; }
        // means2d = (fx tx / z + cx, fy ty / z + cy)
        const float g0 = gm[cg * 2], g1 = gm[cg * 2 + 1];
        v_tx += g0 * k.fx / z;
        v_ty += g1 * k.fy / z;
        v_z -= (g0 * k.fx * P.tx + g1 * k.fy * P.ty) / z2;
        if (std::abs(P.tz) >= 1e-6f) v_tz += v_z;  // tzs is a constant where tz was made safe
        v_tz += gd[cg];  // depths = tz
        // t = R_v mean + t_v
        for (int i = 0; i < 3; ++i) vmean[i] += k.R[i] * v_tx + k.R[3 + i] * v_ty + k.R[6 + i] * v_tz;
      }
      for (int i = 0; i < 3; ++i) om[n * 3 + i] = vmean[i];
      // S = Mg Mg^T: v_Mg = (v_S + v_S^T) Mg; Mg = R(q) diag(s)
      float vM[9];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          float s = 0.f;
          for (int l = 0; l < 3; ++l) s += (vS[i * 3 + l] + vS[l * 3 + i]) * P.Mg[l * 3 + j];
          vM[i * 3 + j] = s;
        }
      const float* sc = sp + n * 3;
      float vR[9];
      for (int j = 0; j < 3; ++j) {
        os[n * 3 + j] = vM[j] * P.Rg[j] + vM[3 + j] * P.Rg[3 + j] + vM[6 + j] * P.Rg[6 + j];
        for (int i = 0; i < 3; ++i) vR[i * 3 + j] = vM[i * 3 + j] * sc[j];
      }
      const float w = P.u[0], x = P.u[1], y = P.u[2], zq = P.u[3];
      float vu[4];
      vu[0] = 2 * (-zq * vR[1] + y * vR[2] + zq * vR[3] - x * vR[5] - y * vR[6] + x * vR[7]);
      vu[1] = 2 * (y * vR[1] + zq * vR[2] + y * vR[3] - 2 * x * vR[4] - w * vR[5] + zq * vR[6] + w * vR[7] - 2 * x * vR[8]);
      vu[2] = 2 * (-2 * y * vR[0] + x * vR[1] + w * vR[2] + x * vR[3] + zq * vR[5] - w * vR[6] + zq * vR[7] - 2 * y * vR[8]);
      vu[3] = 2 * (-2 * zq * vR[0] - w * vR[1] + x * vR[2] + w * vR[3] - 2 * zq * vR[4] + y * vR[5] + x * vR[6] + y * vR[7]);
      // u = q / max(|q|, eps): v_q = (v_u - u (u . v_u)) / |q| (a constant divisor below eps)
      if (P.qn > 1e-12f) {
        const float dot = w * vu[0] + x * vu[1] + y * vu[2] + zq * vu[3];
        for (int i = 0; i < 4; ++i) oq[n * 4 + i] = (vu[i] - P.u[i] * dot) / P.qn;
      } else {
        for (int i = 0; i < 4; ++i) oq[n * 4 + i] = vu[i] / 1e-12f;
      }
    }
  });
  return {v_means, v_quats, v_scales};
}
