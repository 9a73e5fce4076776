# Builds build/Release/wct_native.node: the N-API binding (kernels/napi) over the C++ kernels (kernels/src).
# No -march flags: hot loops are compiled per ISA with target attributes and picked at load (dispatch.h).
{
  "targets": [
    {
      "target_name": "wct_native",
      "sources": [
        "kernels/napi/addon.cc",
        "kernels/napi/optim.cc",
        "kernels/napi/packed.cc",
        "kernels/napi/quant.cc",
        "kernels/src/adamw.cc",
        "kernels/src/attention.cc",
        "kernels/src/cross_entropy.cc",
        "kernels/src/dispatch.cc",
        "kernels/src/dropout.cc",
        "kernels/src/elementwise.cc",
        "kernels/src/embedding.cc",
        "kernels/src/gemm.cc",
        "kernels/src/packed_gemm_dequant.cc",
        "kernels/src/gptq.cc", "kernels/src/quant_params.cc",
        "kernels/src/norms.cc",
        "kernels/src/packed_bench.cc", "kernels/src/packed_codes.cc", "kernels/src/packed_gemm.cc", "kernels/src/packed_gemv.cc", "kernels/src/packed_gemv_int.cc", "kernels/src/packed_sparse.cc",
        "kernels/src/rope.cc",
        "kernels/src/softmax.cc",
        "kernels/src/syrk.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "kernels/include",
        "/usr/include/x86_64-linux-gnu/openblas-openmp"
      ],
      # C++ exceptions on: every std::exception escaping a binding becomes a JS Error (never an abort).
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
      # (a "!" list filters the merged flags, ours included: never list -O3 there). -fno-math-errno and
      # -fno-trapping-math change no result; they let GCC vectorise loops with sqrt / selects.
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags": ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-lopenblas", "-ldnnl", "-lgomp"]
    }
  ]
}
