"""Shared test helpers, imported as ``from helpers.<module> import ...`` (``tests/`` is on pytest's pythonpath).

  wafers       drawn wafer maps: pattern_mask, make_wafer, make_mixed_wafer, make_wafer_set, to_255
  frames       data-file frames: make_wm811k_frame, make_lswmd_frame, make_mixed_arrays, make_mixed_frame
  images       inspection-image folders: make_deeppcb, make_box_set, write_class_folders, tiny_detect_cfg
  cli          run_cli (``adrcs ARGV`` in-process)
  runs         tiny trained runs and request bodies: train_wafer_run, train_detector_run, small_maps
  service      a service under FastAPI's test client: wafer_service, Service, ROLES, role_auth, inspect_maps,
               assert_clean_error
  live_server  serve_in_thread (uvicorn in a thread for one test), free_port
  browser      headless_chromium (Selenium; skips without a browser)
  bench        bench_service (bench/service.py's server starter and load generators)
"""
