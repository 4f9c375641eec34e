{
  "variables": { "asan%": 0 },
  "targets": [
    {
      "target_name": "vhost_user",
      # Whole folders (scripts/native-sources.js), so a new .cc file needs no edit here.
      "sources": ["<!@(node scripts/native-sources.js addon)"],
      "libraries": ["-ldl"],
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
