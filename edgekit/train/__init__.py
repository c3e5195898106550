"""Training stages: fine-tune a classifier, distil a smaller student, prune (structured / magnitude).

Import the stage modules directly (``edgekit.train.finetune`` ...); each imports TensorFlow
only when it runs.
"""
