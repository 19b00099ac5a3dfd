# CAD's parallel CNN on MobileSAM's embedding, Kvasir-SEG + CVC-ClinicDB at
# 256x256, the CPU recipe (the same loss, optimizer and schedule as the other
# methods of this comparison, not the CAD paper's). The adapter sees the
# image at 256x256, the data's own resolution (the CAD paper uses half the
# 1024 network input).
_base_ = ['../decoder_only/kvasir-cvc_mobile-sam.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=256)))
