"""Benchmark metrics, each equal to its official scorer (formulas and quirks: ../shared/spec/PROTOCOLS.md).

Every official quirk is reproduced by default; a corrected variant only exists behind an explicit
option and its output keys are labelled (suffix `` [corrected]`` / `` [torch]``).

``mapfree`` (per frame, camera-to-world inputs as the scorer converts them; quaternions wxyz):
    translation_error(t_gt, t_est) -> m;  rotation_error(q_gt, q_est, variant="sin"|"cos") -> deg
    vcre(q_gt, t_gt, q_est, t_est, K, W, H) -> px;  VIRTUAL_GRID (196 x 4, official order)
    frame_errors(q_gt, t_gt, q_est, t_est, K, W, H, rotation="sin") -> {trans_err_m, rot_err_deg, vcre_px}
    frame_errors_w2c(q_gt, t_gt, q_est, t_est, K, W, H, rotation="sin")   same keys, world-to-camera
        inputs (q wxyz or 3x3 R; the reference camera is the world); K cast to float32 like the scorer
    w2c_to_c2w(q, t) -> (q_c2w, centre);  precision_recall(confidence, tp, failures) -> (prec, rec, auc)
    aggregate({scene: {trans_err_m, rot_err_deg, vcre_px, confidence: arrays}}, failures) -> dict
    summarize_mapfree(df) -> dict with the official keys (KEYS): columns scene, trans_err_m,
        rot_err_deg, vcre_px, confidence, status (status != "ok" = failure)
    constants T_THRESHOLD 0.25, R_THRESHOLD 5, VCRE_THRESHOLD 90, SUBSAMPLE 5, KEY_* strings

``submission`` (Map-free ZIP; ground truth read with the scorer's lenient rules):
    write_submission(path_zip, {scene: [(frame_name, q_wxyz|R, t, confidence), ...]}) -> Path
    read_submission(zip, check_confidence=True) -> {scene: {frame_number: PoseLine(name, q, t, confidence)}}
    validate_submission(zip, split_dir) -> [problem sentences]
    score_submission(split_dir, zip, corrected=False) -> dict (the official CLI output)
    evaluate_submission(split_dir, zip, corrected=False) -> {scene: SceneScore(evaluated, frames, errors, failures)}
    evaluated_frames(poses_txt, keep_zero_poses=False) -> [(name, frame_number)]
    read_ground_truth(scene_dir), read_intrinsics_official(scene_dir) -> ({frame: K float32}, W, H)

``relpose`` (ScanNet-1500, SuperGlue/LoFTR):
    angle_error_t(t_est, t_gt), angle_error_R(R_est, R_gt) -> deg
    relative_pose_error(T_0to1, R_est, t_est, ignore_gt_t_thr=0) -> (err_t, err_R), inf on failure
    pose_error(err_t, err_R) -> max, NaN -> inf;  pose_auc(errors, thresholds) -> [fractions]
    pose_auc_loftr(errors) -> {"auc@5", "auc@10", "auc@20"}
    epipolar_errors(kpts0, kpts1, T_0to1, K0, K1);  epipolar_precision(errs, thr=5e-4)
    matching_score(errs, num_kpts0, thr);  epidist_prec(errs_per_pair, thresholds) -> {"prec@5e-04"}
    aggregate_metrics_loftr(identifiers, R_errs, t_errs, epi_errs, epi_err_thr) (later duplicate wins)
    pair_errors(T_0to1, R, t, kpts0, kpts1, K0, K1, num_kpts0) -> {err_R_deg, err_t_deg, pose_err_deg,
        epi_precision, matching_score}
    summarize_relpose(df) -> {"AUC@5", "AUC@10", "AUC@20" (percent), "Prec", "MScore" (percent)}

``rra`` (PoseDiffusion RRA/RTA/mAA, numpy):
    from_pytorch3d(R, T, opencv_axes=True) -> (R_w2c, t_w2c);  pair_indices(n)
    rotation_angle_deg(R_a, R_b), translation_angle_deg(t_a, t_b)
    sequence_errors(R_gt, t_gt, R_pred, t_pred) -> (rre_deg, rte_deg) over all pairs
    mean_accuracy(rre, rte, 30, variant="numpy"|"torch") -> fraction
    accuracy_metrics(rre, rte, taus=(5, 15, 30)) -> {"RRA@5", "RTA@5", ..., "mAA@30"} (percent)
    summarize_rra(df) -> same keys: per category (or scene) over pooled pairs, then the mean

``aachen`` (absolute localization, DUSt3R/MASt3R visloc summary, server submission):
    pose_error_c2w(pred_c2w | None, gt_c2w), pose_error_w2c(R_gt, t_gt, R_est, t_est) -> (m, deg)
    accuracy_stats(trans, rot) -> {images, median_pos_error, median_angular_error, "acc@0.25m,2deg", ...}
    format_stats(label, trans, rot) -> the official one-line summary;  query_condition(name)
    summarize_aachen(df, name_column="sample_id") -> overall keys + "day/..." + "night/..."
    write_submission(path, {query: (q_wxyz|R, t) | None}, fallback=None, prepend_camera_name=False)
    read_submission(path) -> {name: (q, t)}
"""
