"""The values the reproduced papers published, transcribed from ../shared/papers/ (tables as printed there).

Heart-attack values are IoU x 100; ASMA values are (mean, std) with IoU and pixel accuracy as fractions.
"""

EPS = (0.01, 0.02, 0.04, 0.08, 0.16)
FGSM_LOSSES = ("ce", "dice", "iou")  # the attack losses Wang and Xu compare (our names)
RESIZE_FACTORS = (0.4, 0.6, 0.8, 1.2, 1.4, 1.6, 1.8)

# Ozbulak et al. 2019, Table 1: (L2, Linf, IoU, PA), each (mean, std); 572x572 images in [0, 1].
ASMA_TABLE1 = {
    ("fundus", "ssm"): ((4.60, 1.76), (0.22, 0.09), (0.47, 0.18), (0.94, 0.02)),
    ("fundus", "asm"): ((2.82, 1.29), (0.17, 0.09), (0.94, 0.07), (0.99, 0.01)),
    ("fundus", "asma"): ((2.47, 1.05), (0.17, 0.09), (0.97, 0.02), (0.99, 0.01)),
    ("dermoscopy", "ssm"): ((11.76, 4.11), (0.24, 0.05), (0.43, 0.15), (0.88, 0.02)),
    ("dermoscopy", "asm"): ((4.11, 2.23), (0.16, 0.10), (0.89, 0.09), (0.98, 0.01)),
    ("dermoscopy", "asma"): ((3.88, 1.99), (0.16, 0.09), (0.89, 0.10), (0.98, 0.01)),
}

# Bortsova et al. 2021, Table 1: mean IoU x 100 with the ground truth over the five structures, per eps.
HEART_TABLE1 = {"white-box": (30.5, 0.8, 0.1, 0.0, 0.0), "black-box": (87.4, 84.2, 74.7, 45.5, 12.7)}
HEART_TABLE1_CLEAN = 90.3

# Table 2: heart IoU x 100 with the attack target ("target") and with the ground truth ("truth").
HEART_TABLE2 = {
    ("target", "small", "white-box"): (88.0, 96.9, 97.8, 98.4, 98.6),
    ("target", "small", "black-box"): (34.3, 35.3, 36.8, 41.2, 28.9),
    ("target", "large", "white-box"): (66.7, 83.2, 95.2, 98.7, 99.1),
    ("target", "large", "black-box"): (43.3, 43.2, 43.4, 38.9, 13.1),
    ("truth", "small", "white-box"): (38.4, 34.8, 34.4, 34.6, 34.4),
    ("truth", "small", "black-box"): (85.5, 85.1, 84.0, 73.4, 22.0),
    ("truth", "large", "white-box"): (62.5, 50.1, 43.7, 42.0, 41.8),
    ("truth", "large", "black-box"): (85.8, 85.2, 84.8, 77.8, 26.0),
}
HEART_TABLE2_CLEAN = 87.3

# Table 3: mean IoU x 100 of the four other structures with their target (the ground truth outside the symbol).
HEART_TABLE3 = {
    ("small", "white-box"): (98.9, 99.5, 99.7, 99.8, 99.8),
    ("small", "black-box"): (92.9, 93.6, 94.5, 93.1, 74.6),
    ("large", "white-box"): (86.7, 95.2, 99.4, 99.6, 99.6),
    ("large", "black-box"): (78.4, 79.1, 80.0, 79.5, 64.5),
}
HEART_TABLE3_CLEAN = 91.0

# Table 4: IoU x 100 of the resized structure with its target, eps 0.04; first value: clean vs ground truth.
HEART_TABLE4 = {
    "heart": (87.3, 97.5, 98.3, 98.8, 99.4, 99.1, 97.1, 95.1),
    "left_clavicle": (86.6, 90.8, 93.8, 98.6, 98.9, 98.0, 95.1, 88.8),
    "right_clavicle": (87.0, 92.2, 95.4, 98.8, 99.1, 97.7, 94.5, 88.1),
    "left_lung": (95.0, 91.9, 93.0, 95.7, 95.4, 89.9, 83.5, 78.3),
    "right_lung": (95.4, 95.5, 97.1, 97.9, 96.3, 91.7, 87.1, 83.4),
}
HEART_TABLE4_OTHERS_MIN = 98.9
