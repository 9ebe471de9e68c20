"""Weights of the plate candidate ranker (ranking.Ranker).

Written by bench/train_plate_ranker.py (logistic regression, L2 1.0) on the tune
photos of the 'fixed' split of ../shared/data/plates. Do not edit by hand.
"""

FEATURES = ('log_vote', 'log_line_quality', 'log_relative', 'log_prior', 'off_grammar', 'swaps', 'trimmed', 'agreement', 'shape_penalty', 'log_height', 'centre_y', 'off_centre_x', 'contrast', 'as_read', 'log_rank', 'letters_only', 'digits_only', 'short', 'length', 'rare_letters', 'lone_letters')
MEAN = [-4.328831, -0.23393, -1.903774, -0.983928, 0.440746, 1.200495, 0.672247, 0.618255, 0.250713, -3.03645, 0.557207, 0.177475, 0.762938, 0.064866, 2.920718, 0.192315, 0.015788, 0.035001, 0.920405, 0.701921, 0.223321]
SCALE = [2.107785, 0.292278, 1.594707, 1.222945, 0.496477, 1.435618, 0.469394, 0.296339, 0.205121, 0.490619, 0.221972, 0.147743, 0.255694, 0.246289, 1.411314, 0.394119, 0.124656, 0.183782, 0.156476, 0.890624, 0.424166]
WEIGHTS = [0.677, 0.061923, -1.382667, 1.919692, -0.911735, -1.208588, -1.070913, 0.674558, 0.230583, 0.687574, -0.000151, -0.108617, 0.153034, 0.24071, -3.095889, -0.769156, -0.520409, -0.665603, 0.057845, -0.203524, -0.118234]
BIAS = -11.691515
CALIBRATION_IN = [0.0, 0.000771, 0.004797, 0.014418, 0.044143, 0.115385, 0.311449, 0.705064, 0.878378, 0.920745, 0.945766, 1.0]
CALIBRATION_OUT = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0952, 0.5238, 0.881, 0.9048, 0.9268, 0.95, 0.95]
