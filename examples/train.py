#!/usr/bin/env python3
r"""Trains a torchvision ResNet on imgpack stores: the ImageNet recipe
(RandomResizedCrop + RandomHorizontalFlip, SGD with momentum, cosine
learning rate) with batches made by imgpack.Loader.

    # the stores: train whole images, val center crops (README, "Training
    # with PyTorch")
    imgpack pack --crop 0 --format jpeg --quality 90 \
        imagenet/train train.imgpack
    imgpack pack --classes-from train.imgpack imagenet/val val.imgpack
    # one process (GPU if there is one)
    python3 examples/train.py train.imgpack val.imgpack --amp
    # DistributedDataParallel, one process per GPU
    torchrun --nproc_per_node 8 examples/train.py train.imgpack \
        val.imgpack --amp

Each rank reads its own share of every epoch (the Loader's rank and
world_size come from torch.distributed when it is initialised; torchrun's
environment initialises it here). A checkpoint holds the model, the
optimizer, the AMP scaler and every rank's train Loader state_dict, so
``--resume`` continues mid-epoch with exactly the batches an uninterrupted
run would have seen. Needs PYTHONPATH to include imgpack's python/
directory (or an installed imgpack) and torchvision; no pretrained
weights are used.
"""

import argparse
import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision

import imgpack


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train", help="train store, packed with --crop 0")
    p.add_argument("val", help="val store (center crops)")
    p.add_argument("--arch", default="resnet50",
                   help="a torchvision.models constructor (default "
                        "resnet50)")
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--batch-size", type=int, default=256,
                   help="per rank (default 256)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default 0.1 x global "
                        "batch / 256)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--crop", type=int, default=224,
                   help="training resolution (RandomResizedCrop size)")
    p.add_argument("--val-crop", type=int, default=None,
                   help="center crop of the val records (default: the "
                        "records as packed)")
    p.add_argument("--threads", type=int, default=0,
                   help="C threads per Loader (default: every core)")
    p.add_argument("--prefetch", type=int, default=2,
                   help="train batches prepared ahead (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", action="store_true",
                   help="automatic mixed precision (float16 on CUDA, "
                        "bfloat16 on CPU)")
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop after this many steps in all (0: run every "
                        "epoch)")
    p.add_argument("--checkpoint", default="checkpoint.pt",
                   help="written at each epoch's end and at --max-steps")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint")
    p.add_argument("--print-every", type=int, default=50)
    return p.parse_args(argv)


def distributed():
    """(rank, world_size, local device); initialises torch.distributed
    when launched by torchrun (its environment variables)."""
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE",
                                                        "1")) > 1:
        dist.init_process_group(
            "nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def learning_rate(base, step, total):
    """Cosine from base to 0 over all steps: a function of the step alone,
    so a resumed run continues the schedule."""
    return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def evaluate(model, loader, device, world, classes):
    model.eval()
    correct1 = correct5 = seen = 0
    with torch.no_grad():
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            top5 = model(images).topk(min(5, classes), 1).indices
            hits = top5 == labels[:, None]
            correct1 += hits[:, 0].sum().item()
            correct5 += hits.any(1).sum().item()
            seen += labels.numel()
    totals = torch.tensor([correct1, correct5, seen], dtype=torch.float64,
                          device=device)
    if world > 1:
        dist.all_reduce(totals)
    model.train()
    correct1, correct5, seen = totals.tolist()
    return correct1 / max(seen, 1), correct5 / max(seen, 1)


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = distributed()
    torch.manual_seed(args.seed)
    pin = device.type == "cuda"
    train = imgpack.Loader(
        args.train, args.batch_size, shuffle=True, seed=args.seed,
        rank=rank, world_size=world, drop_last=True, crop=args.crop,
        crop_mode="random_resized", flip=True, output="torch",
        pin_memory=pin, prefetch=args.prefetch, threads=args.threads)
    val = imgpack.Loader(
        args.val, args.batch_size, shuffle=False, rank=rank,
        world_size=world, crop=args.val_crop, output="torch",
        pin_memory=pin, threads=args.threads)
    if len(train) == 0:
        raise SystemExit("train.py: fewer records per rank than one batch")

    model = torchvision.models.__dict__[args.arch](
        num_classes=len(train.classes)).to(device)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if pin else None)
    lr = args.lr or 0.1 * args.batch_size * world / 256
    # No weight decay on batch norm and bias parameters, as the reference
    # recipes do.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, momentum=args.momentum)
    amp_dtype = torch.float16 if pin else torch.bfloat16
    scaler = torch.cuda.amp.GradScaler(enabled=args.amp and pin)

    start_epoch, step = 0, 0
    if args.resume:
        state = torch.load(args.checkpoint, map_location=device)
        bare = model.module if world > 1 else model
        bare.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if len(state["loaders"]) != world:
            raise SystemExit("train.py: the checkpoint is of %d ranks, not "
                             "%d" % (len(state["loaders"]), world))
        train.load_state_dict(state["loaders"][rank])
        start_epoch, step = state["epoch"], state["step"]

    def save(epoch):
        # Every rank's Loader state: each rank reads its own order.
        loaders = [train.state_dict()]
        if world > 1:
            loaders = [None] * world
            dist.all_gather_object(loaders, train.state_dict())
        if rank == 0:
            bare = model.module if world > 1 else model
            torch.save({"model": bare.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scaler": scaler.state_dict(),
                        "loaders": loaders,
                        "epoch": epoch, "step": step,
                        "args": vars(args)}, args.checkpoint)

    total = args.epochs * len(train)
    stopped = False
    for epoch in range(start_epoch, args.epochs):
        # The epoch the checkpoint was taken in keeps its position.
        train.set_epoch(epoch)
        began, seen = time.perf_counter(), 0
        for images, labels in train:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(lr, step, total)
            with torch.autocast(device.type, dtype=amp_dtype,
                                enabled=args.amp):
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            seen += labels.numel()
            if rank == 0 and step % args.print_every == 0:
                print("epoch %d step %d loss %.4f %.0f images/s/rank"
                      % (epoch, step, loss.item(),
                         seen / (time.perf_counter() - began)), flush=True)
            if args.max_steps and step >= args.max_steps:
                stopped = True
                break
        save(epoch)
        top1, top5 = evaluate(model, val, device, world, len(train.classes))
        if rank == 0:
            print("epoch %d step %d val top1 %.4f top5 %.4f"
                  % (epoch, step, top1, top5), flush=True)
        if stopped:
            break
    train.close()
    val.close()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
