# Prompt-aware fine-tuning (docs/prompts.md): as kvasir-cvc_mobile-sam.py,
# and half of the training images give the decoder a box or 1-3 points
# sampled from their ground truth. Prediction stays prompt-free.
_base_ = ['./kvasir-cvc_mobile-sam.py']
model = dict(
    decode_head=dict(prompt_sampler=dict(type='GTPromptSampler', prob=0.5)))
