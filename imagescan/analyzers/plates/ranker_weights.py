"""Weights of the plate candidate ranker (ranking.Ranker).

Written by bench/train_plate_ranker.py (logistic regression, L2 1.0) on the tune
photos of the 'fixed' split of ../shared/data/plates. Do not edit by hand.
"""

FEATURES = ('log_vote', 'log_line_quality', 'log_relative', 'log_prior', 'off_grammar', 'swaps', 'trimmed', 'agreement', 'shape_penalty', 'log_height', 'centre_y', 'off_centre_x', 'contrast', 'as_read', 'log_rank', 'letters_only', 'digits_only', 'short', 'length', 'rare_letters', 'lone_letters')
MEAN = [-4.29621, -0.256907, -1.896405, -0.877748, 0.480634, 1.071742, 0.656728, 0.61855, 0.249682, -3.102849, 0.5116, 0.160383, 0.754824, 0.066684, 2.897351, 0.247172, 0.01717, 0.034607, 0.923162, 0.712631, 0.202449]
SCALE = [2.090742, 0.301622, 1.618767, 1.178524, 0.499625, 1.389352, 0.474801, 0.299066, 0.195799, 0.458482, 0.229557, 0.141762, 0.25981, 0.249475, 1.389813, 0.431367, 0.129905, 0.182781, 0.159483, 0.881247, 0.408722]
WEIGHTS = [0.827757, 0.404103, -1.327349, 1.974219, -0.83738, -1.225361, -1.1379, 0.283398, 0.130737, 0.559295, 0.179202, -0.140385, 0.093114, 0.23991, -3.098836, -0.967766, -0.582555, -0.58232, 0.09864, -0.227058, 0.018808]
BIAS = -12.108028
CALIBRATION_IN = [0.0, 0.000358, 0.002141, 0.008818, 0.022788, 0.047755, 0.158851, 0.619959, 0.857303, 0.918638, 1.0]
CALIBRATION_OUT = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2581, 0.7419, 0.9, 0.9556, 0.9556]
