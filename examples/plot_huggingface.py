"""
Recording a Hugging Face Trainer run
====================================

:class:`dynamics.integrations.huggingface.RecorderCallback` attaches a recorder to the
``transformers.Trainer``'s model and optimizer; every number the trainer logs at a step
(loss, learning rate, gradient norm) becomes a series, and the end-of-run summary goes to
the recording's metadata. The model here is a tiny BERT built from its config (nothing is
downloaded), learning to tell two kinds of random token sequences apart.
"""

import torch
import transformers

from dynamics import load
from dynamics.integrations.huggingface import RecorderCallback
from scenes.layers import LayersScene

torch.manual_seed(0)
config = transformers.BertConfig(
    vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, max_position_embeddings=16, num_labels=2,
)
model = transformers.BertForSequenceClassification(config)
tokens = torch.randint(5, 50, (256, 12))
labels = (tokens[:, 0] < 25).long()  # the class is in the first token
data = [{"input_ids": t, "labels": label} for t, label in zip(tokens, labels)]
args = transformers.TrainingArguments(
    output_dir="outputs/hf",
    max_steps=30,
    per_device_train_batch_size=16,
    learning_rate=1e-3,
    logging_steps=1,
    save_strategy="no",
    report_to=[],
    use_cpu=True,
    disable_tqdm=True,
)
callback = RecorderCallback("outputs/hf.rec", schedule=1, overwrite=True)
transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()

recording = load("outputs/hf.rec")
print(recording.metadata["trainer_summary"])
scene = LayersScene(recording)
scene.show(quality="final")
