{
  "variables": { "asan%": 0 },
  "targets": [
    {
      "target_name": "vhost_user",
      "sources": [
        "native/addon.cc",
        "native/napi/socket_wrap.cc",
        "native/napi/os_wrap.cc",
        "native/napi/device_wrap.cc",
        "native/core/guest_memory.cc",
        "native/core/split_ring.cc",
        "native/core/worker.cc",
        "native/net/net_device.cc",
        "native/net/rx_reservation.cc",
        "native/net/tx_frame.cc",
        "native/net/ports/loopback.cc",
        "native/net/ports/registry.cc",
        "native/net/ports/sink.cc",
        "native/net/ports/source.cc",
        "native/net/ports/tap.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [
        ["asan==1", {
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }, {
          "cflags_cc": ["-flto=auto"],
          "ldflags": ["-flto=auto", "-O2"]
        }]
      ]
    }
  ]
}
