"""Generate the bundled prefalign quickstart preference dataset.

The dataset teaches one easy-to-spot behaviour: every answer starts with a
one-line summary prefixed ``TL;DR: ``, then a blank line, then the detailed
answer. The rejected answer has the same words with the summary moved to the
end, so each pair differs only in whether the answer leads with its summary.

Standard library only and fully deterministic. Run from anywhere:

    python data/quickstart/generate.py

Writes ``train.jsonl`` and ``eval.jsonl`` next to this file, in TRL's
conversational preference format (prompt / chosen / rejected message lists).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).parent
TLDR_PREFIX = "TL;DR: "

# Length limits (in whitespace-separated words) that keep rows cheap to train on.
MAX_QUESTION_WORDS = 15
MAX_SUMMARY_WORDS = 15
MIN_DETAIL_WORDS = 35
MAX_DETAIL_WORDS = 60


class Topic(NamedTuple):
    key: str
    questions: tuple[str, ...]
    summary: str
    detail: str


def T(key: str, questions: list[str], summary: str, detail: str) -> Topic:
    return Topic(key, tuple(questions), summary, detail)


# ---------------------------------------------------------------------------
# Train topics: every (topic, phrasing) pair becomes one training row.
# ---------------------------------------------------------------------------
TRAIN_TOPICS: list[Topic] = [
    # --- Physical and earth science -------------------------------------
    T(
        "photosynthesis",
        [
            "What is photosynthesis?",
            "Explain photosynthesis briefly.",
            "How do plants make food from sunlight?",
        ],
        "Plants use sunlight to turn water and carbon dioxide into sugar and oxygen.",
        "Photosynthesis happens mainly in the leaves, inside structures called chloroplasts. "
        "Chlorophyll absorbs light energy, which the plant uses to combine carbon dioxide from "
        "the air with water from the soil. The result is glucose, which fuels growth, and "
        "oxygen, which is released into the air as a by-product.",
    ),
    T(
        "gravity",
        [
            "What is gravity?",
            "Why do things fall to the ground?",
            "Can you explain gravity in simple terms?",
        ],
        "Gravity is the attraction between masses; Earth's large mass pulls objects toward it.",
        "Every object with mass attracts every other object, and the pull grows stronger with "
        "more mass and weaker with distance. Earth is so massive that its gravity dominates "
        "everything near its surface, so dropped objects speed up as they fall at about 9.8 "
        "metres per second every second, ignoring air resistance.",
    ),
    T(
        "atoms",
        [
            "What is an atom?",
            "What are atoms made of?",
            "Tell me about atoms.",
        ],
        "Atoms are the tiny building blocks of matter: a nucleus surrounded by electrons.",
        "An atom has a dense central nucleus containing positively charged protons and neutral "
        "neutrons, surrounded by negatively charged electrons. The number of protons decides "
        "which element the atom is; carbon always has six, for example. Atoms are so small that "
        "hundreds of thousands side by side would barely span a human hair.",
    ),
    T(
        "dna",
        [
            "What is DNA?",
            "What does DNA do in the body?",
            "Explain DNA in a few sentences.",
        ],
        "DNA is the molecule that stores the genetic instructions for building living things.",
        "DNA is a long, twisted double helix built from four chemical bases, usually written A, "
        "T, C and G. The order of these bases forms genes, which tell cells how to make "
        "proteins. Almost every cell in your body carries a full copy of your DNA, inherited "
        "half from each parent.",
    ),
    T(
        "water_cycle",
        [
            "What is the water cycle?",
            "How does rain form?",
            "Explain how water moves around the Earth.",
        ],
        "Water evaporates, condenses into clouds, falls as rain or snow, and flows back to sea.",
        "The sun heats oceans, lakes and soil, turning water into vapour that rises into the "
        "atmosphere. As the vapour cools, it condenses into tiny droplets that form clouds. "
        "When the droplets grow heavy enough they fall as rain or snow, which collects in "
        "rivers, soaks into the ground, and eventually returns to the sea.",
    ),
    T(
        "rainbows",
        [
            "How do rainbows form?",
            "Why do we see rainbows after rain?",
            "What creates a rainbow in the sky?",
        ],
        "Raindrops bend and reflect sunlight, splitting it into its separate colours.",
        "Sunlight is a mix of all the visible colours. When it enters a raindrop, it bends, "
        "reflects off the back of the drop, and bends again on the way out, and each colour "
        "bends by a slightly different amount. To see a rainbow, you need the sun behind you "
        "and rain in front of you.",
    ),
    T(
        "blue_sky",
        [
            "Why is the sky blue?",
            "What makes the sky look blue during the day?",
            "Why is the daytime sky blue and not another colour?",
        ],
        "Air molecules scatter blue sunlight far more than red, filling the sky with blue.",
        "This effect is called Rayleigh scattering: shorter wavelengths of light are scattered "
        "much more strongly by the gases in the atmosphere. Blue light is bounced in every "
        "direction, so it reaches your eyes from all over the sky. At sunset, light crosses "
        "more air, so more blue is scattered away and reds and oranges dominate.",
    ),
    T(
        "seasons",
        [
            "What causes the seasons?",
            "Why is summer warmer than winter?",
            "Is it colder in winter because Earth is farther from the sun?",
        ],
        "Seasons come from Earth's tilted axis, not from changes in distance to the sun.",
        "Earth's axis is tilted about 23.5 degrees. For part of the year one hemisphere leans "
        "toward the sun, getting more direct sunlight and longer days, so it has summer. Six "
        "months later it leans away and has winter. In fact, Earth is closest to the sun in "
        "early January, during the northern winter.",
    ),
    T(
        "tides",
        [
            "What causes ocean tides?",
            "Why does the sea go in and out every day?",
            "Explain high and low tides.",
        ],
        "Tides are caused mainly by the Moon's gravity pulling on Earth's oceans.",
        "The Moon's gravity pulls the ocean into a slight bulge on the side of Earth facing it, "
        "and a second bulge forms on the opposite side. As Earth rotates through these bulges, "
        "most coasts get two high and two low tides about every 24 hours and 50 minutes. The "
        "sun's pull makes tides strongest at new and full moon.",
    ),
    T(
        "lightning",
        [
            "What causes lightning?",
            "Why does thunder follow lightning?",
            "How does a thunderstorm make lightning?",
        ],
        "Lightning is a giant electric spark; thunder is the sound of the air it superheats.",
        "Inside storm clouds, colliding ice particles build up separated electric charges. When "
        "the difference grows large enough, electricity jumps between the cloud and the ground "
        "or between clouds. The discharge heats the air to tens of thousands of degrees, making "
        "it expand explosively, which we hear as thunder. Light travels faster than sound, so "
        "the flash arrives first.",
    ),
    T(
        "volcanoes",
        [
            "How do volcanoes form?",
            "Why do volcanoes erupt?",
            "What is a volcano?",
        ],
        "Volcanoes erupt when pressurised molten rock and gas escape from underground.",
        "Deep below the surface, rock melts into magma, often where tectonic plates pull apart "
        "or one plate sinks beneath another. Magma is lighter than the surrounding rock, so it "
        "rises and collects in chambers. When pressure from dissolved gases builds up enough, "
        "it bursts through weak points in the crust as lava, ash and gas.",
    ),
    T(
        "earthquakes",
        [
            "What causes earthquakes?",
            "Why does the ground shake during an earthquake?",
            "Explain how earthquakes happen.",
        ],
        "Earthquakes happen when stress along faults in Earth's crust is suddenly released.",
        "Earth's outer shell is broken into large tectonic plates that slowly move. Where "
        "plates meet, rocks can lock together while stress builds for years. When the rocks "
        "finally slip, the stored energy is released as seismic waves that travel through the "
        "ground and make it shake.",
    ),
    T(
        "boiling_altitude",
        [
            "Why does water boil at a lower temperature on mountains?",
            "Why is cooking pasta harder at high altitude?",
        ],
        "Lower air pressure at altitude lets water boil at a lower temperature.",
        "Water boils when its vapour pressure matches the pressure of the air above it. High "
        "up, the air pressure is lower, so water reaches that point sooner: around 70 degrees "
        "Celsius on top of Mount Everest instead of 100 at sea level. Food cooks more slowly in "
        "this cooler boiling water, so it needs longer cooking times.",
    ),
    T(
        "sound",
        [
            "How does sound travel?",
            "Why can't sound travel through space?",
            "What is sound, physically?",
        ],
        "Sound is a vibration passed from particle to particle through a medium like air.",
        "When something vibrates, it pushes on nearby air molecules, which push on their "
        "neighbours, creating waves of compression. These waves reach your ear and vibrate your "
        "eardrum. Because sound needs particles to carry it, it cannot cross the vacuum of "
        "space. In air it moves at about 340 metres per second, and faster in water and solids.",
    ),
    T(
        "magnets",
        [
            "How do magnets work?",
            "Why do magnets attract some metals?",
            "Explain magnetism simply.",
        ],
        "Magnets work because aligned electrons create a magnetic field that pulls on certain metals.",
        "Electrons behave like tiny magnets. In most materials they point in random directions "
        "and cancel out, but in iron, nickel and cobalt they can line up in regions called "
        "domains. When enough domains align, the material produces a magnetic field. Every "
        "magnet has a north and a south pole; opposite poles attract and like poles repel.",
    ),
    T(
        "electric_current",
        [
            "What is electric current?",
            "How does electricity flow through a wire?",
        ],
        "Electric current is a flow of electric charge, usually electrons moving through a conductor.",
        "Metals have loosely held electrons that can move between atoms. When a battery or "
        "power supply applies a voltage, it pushes these electrons along the wire, forming a "
        "current measured in amperes. The electrons themselves drift slowly, but the electrical "
        "signal travels through the circuit almost instantly, which is why lights come on at "
        "once.",
    ),
    T(
        "friction",
        [
            "What is friction?",
            "Why do things slow down when they slide?",
            "Give me a simple explanation of friction.",
        ],
        "Friction is a force that resists surfaces sliding against each other.",
        "Even smooth-looking surfaces have tiny bumps that catch on each other, and the "
        "molecules at the surfaces attract slightly. This resistance turns motion into heat, "
        "which is why rubbing your hands warms them. Friction is useful: it lets tyres grip the "
        "road and shoes grip the floor, while engines use oil to reduce it.",
    ),
    T(
        "inertia",
        [
            "What is Newton's first law of motion?",
            "What is inertia?",
        ],
        "Objects keep doing what they are doing unless a force acts on them.",
        "Newton's first law says an object at rest stays at rest, and a moving object keeps "
        "moving in a straight line at the same speed, unless a force changes that. This "
        "tendency is called inertia. It is why passengers lurch forward when a car brakes "
        "suddenly: their bodies keep moving until a seatbelt stops them.",
    ),
    T(
        "states_of_matter",
        [
            "What are the states of matter?",
            "What is the difference between a solid, a liquid and a gas?",
        ],
        "Matter is usually solid, liquid or gas, depending on how freely its particles move.",
        "In a solid, particles are packed tightly and vibrate in place, so it keeps its shape. "
        "In a liquid, particles are close but slide past each other, so it flows and takes the "
        "shape of its container. In a gas, particles move freely and spread out to fill any "
        "space. Plasma, found in stars, is a fourth state.",
    ),
    T(
        "moon_phases",
        [
            "Why does the Moon change shape?",
            "What causes the phases of the Moon?",
            "Explain the lunar phases.",
        ],
        "We see different amounts of the Moon's sunlit half as it orbits Earth.",
        "The sun always lights half of the Moon. As the Moon travels around Earth over about "
        "29.5 days, our view of that lit half changes, from a thin crescent to a full disc and "
        "back again. At new moon the lit side faces away from us. Earth's shadow plays no part, "
        "except during a lunar eclipse.",
    ),
    T(
        "black_holes",
        [
            "What is a black hole?",
            "Can anything escape a black hole?",
            "Explain black holes to me.",
        ],
        "A black hole's gravity is so strong that not even light can escape.",
        "Black holes form when a huge amount of mass is squeezed into a tiny space, often when "
        "a very massive star collapses at the end of its life. The boundary beyond which "
        "nothing can return is called the event horizon. Astronomers detect black holes by "
        "their effects on nearby stars and gas, and first imaged one's shadow in 2019.",
    ),
    T(
        "the_sun",
        [
            "What is the Sun made of?",
            "How does the Sun produce energy?",
            "Tell me about the Sun.",
        ],
        "The Sun is a hydrogen and helium star powered by nuclear fusion in its core.",
        "In the Sun's core, temperatures of about 15 million degrees Celsius force hydrogen "
        "nuclei to fuse into helium, releasing enormous energy. That energy slowly works its "
        "way outward and leaves the surface as light and heat. Sunlight takes about eight "
        "minutes to reach Earth, and the Sun should keep shining for roughly five billion more "
        "years.",
    ),
    T(
        "stars_twinkle",
        [
            "Why do stars twinkle?",
            "Why do stars seem to flicker?",
            "What makes stars twinkle at night?",
        ],
        "Stars twinkle because moving air in Earth's atmosphere bends their light unevenly.",
        "Starlight passes through layers of air with different temperatures and densities, "
        "which constantly shift and bend the light slightly. Stars are so distant that they "
        "appear as single points, so these shifts make them flicker. Planets are closer and "
        "appear as tiny discs, so the effects average out and they shine more steadily.",
    ),
    # --- Biology and health ----------------------------------------------
    T(
        "vaccines",
        [
            "How do vaccines work?",
            "Why do vaccines protect you from disease?",
            "Can you describe what a vaccine does?",
        ],
        "Vaccines train your immune system to recognise a germ before you meet it.",
        "A vaccine contains a harmless piece or weakened form of a germ, or instructions for "
        "making one of its proteins. Your immune system responds by producing antibodies and "
        "memory cells. If you later encounter the real germ, your body recognises it quickly "
        "and fights it off before it can make you seriously ill.",
    ),
    T(
        "antibiotics",
        [
            "Why don't antibiotics work on colds?",
            "What do antibiotics actually treat?",
            "Can antibiotics cure a viral infection?",
        ],
        "Antibiotics kill bacteria, but colds, flu and other viral infections are caused by viruses.",
        "Antibiotics target structures and processes that bacteria have, such as their cell "
        "walls, which viruses lack. Taking them for a viral infection does not help and can "
        "encourage antibiotic resistance, where bacteria evolve to survive the drugs. When "
        "antibiotics are prescribed for a bacterial infection, take them exactly as directed.",
    ),
    T(
        "heart",
        [
            "How does the heart work?",
            "What does the heart do?",
            "Can you describe how blood is pumped around the body?",
        ],
        "The heart is a muscular pump that pushes blood through the lungs and body.",
        "The heart has four chambers. The right side receives oxygen-poor blood from the body "
        "and pumps it to the lungs, where it picks up oxygen. The left side receives that "
        "oxygen-rich blood and pumps it out to the rest of the body. Valves between the "
        "chambers keep blood flowing in one direction.",
    ),
    T(
        "red_blood_cells",
        [
            "What do red blood cells do?",
            "Why is blood red?",
        ],
        "Red blood cells carry oxygen using haemoglobin, an iron-rich protein that makes blood red.",
        "Each red blood cell is packed with haemoglobin, which picks up oxygen in the lungs and "
        "releases it in tissues that need it. The iron in haemoglobin gives blood its colour, "
        "bright red when carrying oxygen and darker red when not. Veins only look blue through "
        "the skin because of how light is absorbed and scattered.",
    ),
    T(
        "sleep",
        [
            "Why do we need sleep?",
            "What happens if you don't get enough sleep?",
            "How much sleep does an adult need?",
        ],
        "Sleep lets the brain and body recover; most adults need seven to nine hours.",
        "During sleep the brain consolidates memories and clears waste products, while the body "
        "repairs tissue and regulates hormones. Regularly sleeping too little harms "
        "concentration, mood and reaction time, and is linked to obesity, heart disease and "
        "weaker immunity. Keeping a consistent bedtime is one of the simplest ways to sleep "
        "better.",
    ),
    T(
        "hydration",
        [
            "How much water should I drink a day?",
            "Do I really need eight glasses of water daily?",
        ],
        "Needs vary, but drinking when thirsty covers most healthy people's water needs.",
        "The eight-glasses rule is a rough guideline, not a scientific requirement. Water also "
        "comes from food and other drinks, including tea and coffee. You need more in hot "
        "weather, during exercise or when ill. Pale yellow urine is a simple sign you are "
        "drinking enough; dark urine suggests you should drink more.",
    ),
    T(
        "vitamin_d",
        [
            "Why do we need vitamin D?",
            "How does the body get vitamin D?",
        ],
        "Vitamin D helps the body absorb calcium and is made in skin exposed to sunlight.",
        "Without enough vitamin D, bones can become soft and weak. Skin produces it when exposed "
        "to ultraviolet B rays, and it is also found in oily fish, egg yolks and fortified "
        "foods. In places with dark winters, many people get too little sunlight for months, so "
        "health services often recommend a supplement.",
    ),
    T(
        "cells",
        [
            "What is a cell in biology?",
            "What are living things made of?",
        ],
        "Cells are the smallest units of life; all living things are made of them.",
        "Some organisms, like bacteria, are a single cell, while a human body contains tens of "
        "trillions. A typical animal cell has a membrane around it, a nucleus holding its DNA, "
        "and many smaller parts that make energy and proteins. Plant cells also have a rigid "
        "cell wall and chloroplasts for photosynthesis.",
    ),
    T(
        "evolution",
        [
            "What is natural selection?",
            "How does evolution work?",
            "Explain evolution in simple terms.",
        ],
        "Traits that help organisms survive and reproduce become more common over generations.",
        "Individuals in a population vary, and some of that variation is inherited. Those with "
        "traits better suited to their environment tend to survive longer and have more "
        "offspring, passing those traits on. Over many generations this process, described by "
        "Charles Darwin and Alfred Russel Wallace, can change species and give rise to new ones.",
    ),
    T(
        "handwashing",
        [
            "How long should I wash my hands?",
            "Why is handwashing so important?",
        ],
        "Wash your hands with soap for at least 20 seconds to remove germs.",
        "Soap breaks apart the fatty outer layer of many viruses and lifts dirt and bacteria off "
        "the skin so water can rinse them away. Scrub the backs of your hands, between your "
        "fingers and under your nails, then dry them thoroughly. Washing before eating and "
        "after using the toilet prevents many common infections.",
    ),
    T(
        "exercise",
        [
            "How much exercise do adults need?",
            "Why is regular exercise good for you?",
            "Give me the basic exercise guidelines for adults.",
        ],
        "Adults should aim for about 150 minutes of moderate activity weekly, plus strength training.",
        "Health guidelines recommend at least 150 minutes of moderate activity, like brisk "
        "walking, or 75 minutes of vigorous activity each week, plus muscle-strengthening "
        "exercise on two days. Regular activity lowers the risk of heart disease, type 2 "
        "diabetes and some cancers, and improves sleep and mood. Any amount is better than none.",
    ),
    T(
        "sunscreen",
        [
            "What does SPF mean on sunscreen?",
            "How should I use sunscreen?",
        ],
        "SPF measures protection against UVB burns; apply generously and reapply every two hours.",
        "SPF stands for sun protection factor. SPF 30 blocks about 97 percent of UVB rays, and "
        "SPF 50 about 98 percent. Choose a broad-spectrum sunscreen, which also blocks the UVA "
        "rays that age skin. Most people apply too little, so use a generous amount, and "
        "reapply after swimming, sweating or towelling.",
    ),
    T(
        "fibre",
        [
            "Why is fibre important in your diet?",
            "What foods are high in fibre?",
        ],
        "Fibre aids digestion, keeps you full, and comes from plants like beans and whole grains.",
        "Fibre is the part of plant food your body cannot digest. It keeps bowel movements "
        "regular, feeds helpful gut bacteria, and helps control blood sugar and cholesterol. "
        "Good sources include oats, wholemeal bread, beans, lentils, fruit, vegetables, nuts and "
        "seeds. Most adults eat less than the recommended 25 to 30 grams a day.",
    ),
    T(
        "caffeine",
        [
            "How does caffeine keep you awake?",
            "How much caffeine is safe per day?",
            "Why does coffee wake you up?",
        ],
        "Caffeine blocks adenosine, a sleep-promoting chemical; about 400 mg daily is safe for most adults.",
        "Through the day, adenosine builds up in the brain and makes you feel sleepy. Caffeine "
        "fits the same receptors and blocks them, so you feel more alert. Its effects last "
        "several hours, so coffee late in the day can disrupt sleep. Around 400 milligrams, "
        "roughly four cups of brewed coffee, is considered safe for most adults.",
    ),
    T(
        "common_cold",
        [
            "What causes the common cold?",
            "How can I get over a cold faster?",
        ],
        "Colds are caused by viruses; rest and fluids help while your body fights them off.",
        "Hundreds of different viruses, most often rhinoviruses, cause colds, which is why you "
        "can catch them again and again. There is no cure, and antibiotics do not help. Most "
        "colds clear up within seven to ten days. Rest, fluids and over-the-counter remedies "
        "ease the symptoms, and washing your hands helps avoid spreading it.",
    ),
    T(
        "blood_pressure",
        [
            "What is blood pressure?",
            "What do the two blood pressure numbers mean?",
        ],
        "Blood pressure is the force of blood on artery walls, recorded as two numbers.",
        "The top number, systolic pressure, is measured as the heart beats; the bottom, "
        "diastolic, is measured between beats. Both are given in millimetres of mercury, for "
        "example 120 over 80. High blood pressure often causes no symptoms but raises the risk "
        "of heart attack and stroke, so regular checks are worthwhile.",
    ),
    # --- Environment and nature ------------------------------------------
    T(
        "greenhouse_effect",
        [
            "What is the greenhouse effect?",
            "How do greenhouse gases warm the planet?",
            "Explain the greenhouse effect in simple terms.",
        ],
        "Certain gases trap heat in the atmosphere, keeping Earth warmer than it would be.",
        "Sunlight warms Earth's surface, which then gives off heat as infrared radiation. Gases "
        "such as carbon dioxide, methane and water vapour absorb some of this heat and send part "
        "of it back down. Without this natural effect Earth would be frozen, but burning fossil "
        "fuels adds carbon dioxide and strengthens it, causing global warming.",
    ),
    T(
        "ozone_layer",
        [
            "What is the ozone layer?",
            "Why is the ozone layer important?",
        ],
        "The ozone layer is a band of gas high up that blocks harmful ultraviolet rays.",
        "Ozone is a form of oxygen with three atoms per molecule. Most of it sits in the "
        "stratosphere, roughly 15 to 35 kilometres above the ground, where it absorbs much of "
        "the sun's ultraviolet radiation. Chemicals called CFCs once thinned it badly, but the "
        "1987 Montreal Protocol phased them out and the layer is slowly recovering.",
    ),
    T(
        "recycling",
        [
            "Why is recycling important?",
            "What happens to the things I recycle?",
            "How does recycling actually work?",
        ],
        "Recycling turns used materials into new products, saving resources, energy and landfill space.",
        "Collected items are sorted, cleaned and processed into raw materials: paper is pulped, "
        "glass is crushed and melted, and metals are shredded and melted down. Recycling "
        "aluminium uses about 95 percent less energy than making it from ore. Rinsing containers "
        "and following local sorting rules helps, because contaminated loads are often sent to "
        "landfill.",
    ),
    T(
        "composting",
        [
            "How does composting work?",
            "How do I start a compost heap?",
            "What can I put in compost?",
        ],
        "Composting lets microbes break down food and garden waste into rich soil.",
        "Mix green materials, like vegetable scraps and grass clippings, with brown materials, "
        "like dry leaves and cardboard. Keep the heap moist and turn it now and then to let in "
        "air, which the bacteria and fungi need. Avoid meat, dairy and oily food, which attract "
        "pests. After a few months you get dark, crumbly compost.",
    ),
    T(
        "bees",
        [
            "Why are bees important?",
            "How do bees pollinate flowers?",
        ],
        "Bees carry pollen between flowers, helping many plants, including crops, produce seeds and fruit.",
        "When a bee visits a flower for nectar and pollen, pollen grains stick to its hairy body "
        "and rub off on the next flower it visits, fertilising the plant. Many fruits, "
        "vegetables and nuts, such as apples, almonds and blueberries, depend heavily on insect "
        "pollination, and bees are among the most important pollinators.",
    ),
    T(
        "autumn_leaves",
        [
            "Why do leaves change colour in autumn?",
            "What makes autumn leaves turn red and yellow?",
            "Explain why trees change colour in the fall.",
        ],
        "Trees stop making green chlorophyll in autumn, revealing yellow and orange pigments underneath.",
        "Throughout summer, chlorophyll masks other pigments in the leaf. As days shorten and "
        "temperatures drop, trees break chlorophyll down and reclaim its nutrients before "
        "shedding their leaves. Yellow and orange carotenoids, present all along, then show "
        "through. Reds and purples come from anthocyanins, which some trees make fresh in "
        "autumn.",
    ),
    T(
        "bird_migration",
        [
            "Why do birds migrate?",
            "How do birds find their way when migrating?",
        ],
        "Birds migrate to follow food and breeding conditions, navigating by sun, stars and magnetism.",
        "Many birds breed where summers offer long days and plenty of insects, then fly "
        "somewhere warmer when food runs short in winter. To navigate, they use the sun and "
        "stars, Earth's magnetic field, and landmarks such as coastlines and mountains. Some, "
        "like the Arctic tern, travel tens of thousands of kilometres a year.",
    ),
    T(
        "whales",
        [
            "Are whales fish?",
            "How do whales breathe?",
            "Are whales mammals?",
        ],
        "Whales are mammals, not fish, and breathe air through blowholes on their heads.",
        "Like other mammals, whales are warm-blooded, breathe air with lungs, and feed their "
        "young on milk. They must surface to breathe, exhaling through one or two blowholes on "
        "top of their heads, which creates the visible spout. Some species can hold their "
        "breath for over an hour while diving deep for food.",
    ),
    T(
        "bats",
        [
            "How do bats fly in the dark?",
            "What is echolocation?",
        ],
        "Many bats use echolocation, listening to echoes of their calls to locate objects.",
        "An echolocating bat makes high-pitched calls, mostly too high for humans to hear, and "
        "listens for the echoes that bounce back. From the timing and direction of those "
        "echoes, it works out the size, distance and movement of objects, including flying "
        "insects. Bats are not blind, though; many also see quite well.",
    ),
    T(
        "chameleons",
        [
            "How do chameleons change colour?",
            "Why do chameleons change colour?",
        ],
        "Chameleons shift tiny skin crystals to change colour, mostly for signalling and temperature control.",
        "Beneath their outer skin, chameleons have cells containing a lattice of tiny crystals "
        "that reflect light. By loosening or tightening this lattice, they change which colours "
        "are reflected. Camouflage is not the main reason: colour changes mostly signal mood to "
        "other chameleons and help them absorb or reflect heat.",
    ),
    T(
        "coral_reefs",
        [
            "What are coral reefs?",
            "Why are coral reefs important?",
            "Is coral a plant or an animal?",
        ],
        "Coral reefs are built by tiny animals and support a huge share of ocean life.",
        "Corals are small animals called polyps that build limestone skeletons, which pile up "
        "into reefs over thousands of years. Most get much of their food from algae living "
        "inside their tissues. Reefs cover a tiny fraction of the seafloor but shelter around a "
        "quarter of marine species. Warming seas cause bleaching, when corals expel their algae.",
    ),
    T(
        "rainforests",
        [
            "What is a tropical rainforest?",
            "Why are rainforests important?",
        ],
        "Rainforests are warm, wet forests near the equator that hold extraordinary biodiversity.",
        "Tropical rainforests get heavy rain all year and stay warm, allowing dense, layered "
        "plant growth. Although they cover only a small part of Earth's land, they are home to "
        "more than half of its land plant and animal species. They also store vast amounts of "
        "carbon and influence rainfall far beyond their borders.",
    ),
    T(
        "deserts",
        [
            "What makes a place a desert?",
            "Are all deserts hot?",
        ],
        "A desert is defined by very low rainfall, not by heat; some are cold.",
        "Deserts are usually defined as areas receiving less than about 250 millimetres of "
        "precipitation a year. Many are hot, like the Sahara, but Antarctica is the largest "
        "desert on Earth because so little snow falls there. Desert plants and animals survive "
        "by storing water, being active at night, or lying dormant until rain arrives.",
    ),
    T(
        "cats_purr",
        [
            "Why do cats purr?",
            "How do cats make a purring sound?",
            "What does it mean when a cat purrs?",
        ],
        "Cats purr by rapidly twitching throat muscles, usually when content but sometimes when stressed.",
        "The muscles of a cat's voice box tighten and relax many times a second, making the "
        "vocal folds vibrate as the cat breathes in and out. Purring often signals contentment, "
        "but cats also purr when injured, frightened or giving birth, possibly to soothe "
        "themselves. Newborn kittens can feel their mother's purr before their eyes open.",
    ),
    T(
        "dogs_pant",
        [
            "Why do dogs pant?",
            "How do dogs cool down?",
        ],
        "Dogs pant to cool down, because they sweat very little through their skin.",
        "Dogs have sweat glands mainly in their paw pads, which is not enough to control their "
        "temperature. Panting moves air quickly over the moist tongue, mouth and airways, and "
        "evaporation carries heat away. Heavy panting on a hot day can signal overheating, so "
        "give dogs shade and water and avoid exercising them in the midday heat.",
    ),
    T(
        "tree_rings",
        [
            "What do tree rings tell us?",
            "How can you tell how old a tree is?",
        ],
        "Counting a tree's growth rings, usually one per year, reveals its age.",
        "In climates with seasons, trees grow quickly in spring, making pale wood, and slowly in "
        "late summer, making darker, denser wood. Each pair forms one annual ring. Wide rings "
        "mean good growing years, and narrow ones suggest drought or cold. Scientists use long "
        "ring records, a method called dendrochronology, to date old timber and study past "
        "climates.",
    ),
    T(
        "fungi",
        [
            "Are mushrooms plants?",
            "What are fungi?",
            "What is a mushroom?",
        ],
        "Mushrooms are fungi, a separate kingdom of life more closely related to animals than plants.",
        "Fungi cannot photosynthesise; they absorb nutrients from their surroundings, often by "
        "breaking down dead material. A mushroom is just the fruiting body that releases spores, "
        "while most of the organism is a hidden network of threads called mycelium. Fungi also "
        "include yeasts and moulds, and are essential recyclers in almost every ecosystem.",
    ),
    # --- Geography -------------------------------------------------------
    T(
        "everest",
        [
            "What is the tallest mountain in the world?",
            "How high is Mount Everest?",
            "Where is Mount Everest?",
        ],
        "Mount Everest, in the Himalayas, is the highest mountain above sea level, about 8,849 metres.",
        "Everest sits on the border between Nepal and the Tibet region of China. The two "
        "countries jointly remeasured it in 2020 at 8,848.86 metres. The Himalayas are still "
        "rising slowly as the Indian tectonic plate pushes into the Eurasian plate. Measured "
        "from its base on the sea floor, Mauna Kea in Hawaii is taller.",
    ),
    T(
        "pacific_ocean",
        [
            "What is the largest ocean?",
            "How big is the Pacific Ocean?",
        ],
        "The Pacific is Earth's largest and deepest ocean, bigger than all land combined.",
        "The Pacific Ocean covers roughly a third of Earth's surface, stretching from the Arctic "
        "to the Southern Ocean and from Asia and Australia to the Americas. It contains the "
        "Mariana Trench, the deepest known point in the ocean at nearly 11 kilometres. The "
        "explorer Ferdinand Magellan named it for its calm, peaceful waters.",
    ),
    T(
        "sahara",
        [
            "Tell me about the Sahara Desert.",
            "How big is the Sahara?",
        ],
        "The Sahara is the world's largest hot desert, covering much of North Africa.",
        "The Sahara spans about nine million square kilometres, roughly the size of China or "
        "the United States. Only part of it is sand dunes; much is rocky plateau and gravel "
        "plain. Several thousand years ago it was far greener, with lakes and grasslands, as "
        "ancient rock paintings of cattle and swimmers show.",
    ),
    T(
        "equator",
        [
            "What is the equator?",
            "Why is it hot near the equator?",
            "Where is the equator?",
        ],
        "The equator is the imaginary line around Earth's middle, where sunlight is most direct.",
        "The equator lies at zero degrees latitude, halfway between the North and South Poles, "
        "and divides Earth into the Northern and Southern Hemispheres. Near it, the sun stands "
        "high in the sky all year, so sunlight strikes the ground directly and heats it "
        "strongly. Day and night there last close to twelve hours each all year round.",
    ),
    T(
        "time_zones",
        [
            "Why do we have time zones?",
            "How do time zones work?",
            "Explain time zones to me.",
        ],
        "Time zones keep clocks roughly in step with daylight as Earth rotates.",
        "Earth turns 360 degrees in 24 hours, so each 15 degrees of longitude corresponds to "
        "about one hour of sun time. Time zones divide the world into regions that share a "
        "standard clock, usually offset by whole hours from Coordinated Universal Time. Their "
        "borders often follow national or regional boundaries rather than straight lines.",
    ),
    T(
        "continents",
        [
            "How many continents are there?",
            "What are the seven continents?",
        ],
        "The usual count is seven continents, though some countries group them differently.",
        "The seven usually listed are Africa, Antarctica, Asia, Australia, Europe, North America "
        "and South America. Some countries teach six, combining North and South America or "
        "Europe and Asia, since there is no strict scientific definition. Asia is the largest "
        "by both area and population, while Australia is the smallest.",
    ),
    T(
        "dead_sea",
        [
            "Why is the Dead Sea so salty?",
            "Why do people float in the Dead Sea?",
        ],
        "Water flows into the Dead Sea but only leaves by evaporation, concentrating the salt.",
        "The Dead Sea has no outlet. The Jordan River and streams carry in dissolved minerals, "
        "and the hot, dry climate evaporates the water, leaving the salt behind. Its water is "
        "almost ten times saltier than the ocean, which makes it so dense that people float "
        "easily. Apart from some microbes, almost nothing can live in it.",
    ),
    T(
        "canberra",
        [
            "What is the capital of Australia?",
            "Is Sydney the capital of Australia?",
        ],
        "Canberra is Australia's capital, not Sydney or Melbourne.",
        "When Australia's colonies federated in 1901, Sydney and Melbourne both wanted to be the "
        "capital. As a compromise, a new city was built between them. Canberra was designed by "
        "the American architects Walter Burley Griffin and Marion Mahony Griffin, and "
        "Parliament moved there in 1927. Sydney remains the largest city.",
    ),
    # --- History ---------------------------------------------------------
    T(
        "printing_press",
        [
            "Who invented the printing press?",
            "Why was the printing press important?",
            "What did Gutenberg invent?",
        ],
        "Johannes Gutenberg's movable-type press, around 1440, made books cheap and widespread.",
        "Printing existed earlier in China and Korea, but Gutenberg's system of metal movable "
        "type, oil-based ink and a screw press made printing fast and affordable in Europe. "
        "Within decades, printers had produced millions of books. Cheaper books spread literacy "
        "and new ideas, fuelling the Renaissance, the Reformation and the Scientific Revolution.",
    ),
    T(
        "fall_of_rome",
        [
            "Why did the Roman Empire fall?",
            "When did the Western Roman Empire end?",
        ],
        "The Western Roman Empire collapsed in 476 AD after a long decline and invasions.",
        "Historians point to many causes: political instability, economic trouble, overstretched "
        "borders and pressure from peoples such as the Goths and Vandals. In 476 the Germanic "
        "leader Odoacer deposed the last western emperor, Romulus Augustulus. The Eastern, or "
        "Byzantine, Empire lasted nearly a thousand years more, until Constantinople fell in "
        "1453.",
    ),
    T(
        "industrial_revolution",
        [
            "What was the Industrial Revolution?",
            "Where did the Industrial Revolution start?",
        ],
        "The Industrial Revolution shifted work from hand tools to machines, starting in 1700s Britain.",
        "Beginning around 1760, inventions such as improved steam engines and mechanised "
        "spinning and weaving transformed how goods were made. Factories replaced home "
        "workshops, and millions of people moved from farms to growing cities. Railways and "
        "steamships later sped up trade and travel. Output rose enormously, but so did harsh "
        "working conditions and pollution.",
    ),
    T(
        "pyramids",
        [
            "Why were the Egyptian pyramids built?",
            "How old are the pyramids of Giza?",
        ],
        "The Giza pyramids are royal tombs built about 4,500 years ago.",
        "Egypt's pharaohs built pyramids as tombs to protect their bodies and possessions for "
        "the afterlife. The Great Pyramid, made for the pharaoh Khufu around 2560 BC, was the "
        "tallest human-made structure for more than 3,800 years. Evidence suggests it was built "
        "by organised teams of paid workers rather than slaves.",
    ),
    T(
        "moon_landing",
        [
            "When did humans first land on the Moon?",
            "Who was the first person to walk on the Moon?",
            "Tell me about the Apollo 11 mission.",
        ],
        "Neil Armstrong became the first person to walk on the Moon in July 1969.",
        "Apollo 11 launched from Florida carrying Neil Armstrong, Buzz Aldrin and Michael "
        "Collins. Armstrong and Aldrin landed in the lunar module Eagle while Collins orbited "
        "above. Stepping onto the surface, Armstrong said, \"That's one small step for man, one "
        'giant leap for mankind." Twelve people walked on the Moon between 1969 and 1972.',
    ),
    T(
        "french_revolution",
        [
            "What was the French Revolution?",
            "When did the French Revolution begin?",
            "Explain the French Revolution briefly.",
        ],
        "The French Revolution, beginning in 1789, overthrew France's monarchy and reshaped European politics.",
        "Anger over inequality, food shortages and a royal debt crisis led to the storming of "
        "the Bastille in Paris on 14 July 1789. Revolutionaries abolished feudal privileges, "
        "declared the rights of man, and later executed King Louis XVI. The period ended in "
        "turmoil and the rise of Napoleon, but its ideals of liberty and equality spread widely.",
    ),
    T(
        "renaissance",
        [
            "What was the Renaissance?",
            "Where did the Renaissance begin?",
        ],
        "The Renaissance was a European cultural revival that began in 14th-century Italy.",
        "The word means rebirth, referring to renewed interest in the art and learning of "
        "ancient Greece and Rome. Starting in Italian cities such as Florence, it spread across "
        "Europe over the next two centuries. It produced artists like Leonardo da Vinci and "
        "Michelangelo, and encouraged the observation and questioning that helped lead to "
        "modern science.",
    ),
    T(
        "magna_carta",
        [
            "What is the Magna Carta?",
            "Why is the Magna Carta famous?",
        ],
        "The Magna Carta, sealed in 1215, established that even the king was subject to law.",
        "Rebel English barons forced King John to agree to the charter at Runnymede after years "
        "of heavy taxes and failed wars. Many of its clauses dealt with medieval disputes and "
        "were soon dropped, but principles such as no imprisonment without lawful judgement "
        "later inspired documents including the United States Bill of Rights.",
    ),
    T(
        "berlin_wall",
        [
            "Why was the Berlin Wall built?",
            "When did the Berlin Wall fall?",
        ],
        "Built in 1961 to stop East Germans fleeing west, the Berlin Wall fell in 1989.",
        "After the Second World War, Berlin was divided, and many East Germans fled to the West "
        "through the city. To stop them, the East German government built a heavily guarded "
        "wall in August 1961. On 9 November 1989, amid mass protests, the crossings opened, and "
        "Germany was reunified less than a year later.",
    ),
    T(
        "silk_road",
        [
            "What was the Silk Road?",
            "Why was the Silk Road important?",
        ],
        "The Silk Road was a network of trade routes linking China with the Mediterranean.",
        "For well over a thousand years, merchants carried silk, spices, paper, horses and "
        "precious metals across Central Asia by caravan and by sea. Few traders travelled the "
        "whole way; goods passed through many hands. Along with goods, the routes spread "
        "religions such as Buddhism, technologies like papermaking, and diseases including the "
        "plague.",
    ),
    T(
        "world_war_one",
        [
            "What caused the First World War?",
            "Why did World War One start?",
        ],
        "Rival alliances, militarism and nationalism turned a 1914 assassination into a world war.",
        "In June 1914, Archduke Franz Ferdinand of Austria-Hungary was assassinated in Sarajevo "
        "by a Bosnian Serb nationalist. Austria-Hungary declared war on Serbia, and a chain of "
        "alliances quickly drew in Russia, Germany, France and Britain. Years of imperial "
        "rivalry and an arms race meant the crisis escalated instead of being settled by "
        "diplomacy.",
    ),
    # --- Cooking ---------------------------------------------------------
    T(
        "boiled_eggs",
        [
            "How do I boil an egg?",
            "How long should I boil an egg for a runny yolk?",
            "What's the best way to hard-boil eggs?",
        ],
        "Simmer eggs about 6 minutes for runny yolks, 10 minutes for hard-boiled.",
        "Lower eggs gently into boiling water, then turn it down to a steady simmer. For a soft, "
        "runny yolk, cook a large egg for about six minutes; for firm hard-boiled eggs, about "
        "ten to eleven. Move them straight into cold water to stop the cooking and make peeling "
        "easier. Older eggs usually peel more cleanly than very fresh ones.",
    ),
    T(
        "bread_rising",
        [
            "Why does bread rise?",
            "What does yeast do in bread?",
            "How does yeast make dough rise?",
        ],
        "Yeast ferments sugars and releases carbon dioxide, which gluten traps as bubbles.",
        "Yeast is a living fungus. Mixed into dough, it feeds on sugars from the flour and "
        "produces carbon dioxide gas and a little alcohol. Kneading develops gluten, a stretchy "
        "network of proteins that traps the gas, so the dough puffs up. Baking expands the "
        "bubbles further, sets the structure, and drives off the alcohol.",
    ),
    T(
        "cooking_pasta",
        [
            "How do I cook pasta properly?",
            "Why should you salt pasta water?",
            "How much water do I need to cook pasta?",
        ],
        "Boil pasta in plenty of well-salted water and taste it before draining.",
        "Use roughly a litre of water per 100 grams of pasta, bring it to a rolling boil, and "
        "salt it until it tastes pleasantly seasoned; this flavours the pasta itself. Stir in "
        "the first minute to stop sticking. Start tasting a minute or two before the packet "
        "time, and save a cup of the cooking water for the sauce.",
    ),
    T(
        "maillard_reaction",
        [
            "Why does food brown when you cook it?",
            "What is the Maillard reaction?",
        ],
        "Browning comes from the Maillard reaction between proteins and sugars under high heat.",
        "When foods containing amino acids and sugars are heated above roughly 140 degrees "
        "Celsius, they react to form hundreds of new flavour and aroma compounds and brown "
        "pigments. It gives seared steak, toast, roasted coffee and bread crust their savoury "
        "taste. Moisture keeps the surface too cool, so pat food dry and avoid crowding the pan.",
    ),
    T(
        "storing_herbs",
        [
            "How do I keep fresh herbs from wilting?",
            "What's the best way to store fresh herbs?",
        ],
        "Stand soft herbs in water like flowers; wrap hardy herbs in damp paper.",
        "Tender herbs such as parsley, coriander and mint last longest with their stems trimmed "
        "and standing in a glass of water, loosely covered, in the fridge. Basil prefers room "
        "temperature, since cold blackens its leaves. Woody herbs like rosemary and thyme keep "
        "well wrapped in slightly damp kitchen paper in a container in the fridge.",
    ),
    T(
        "cooking_rice",
        [
            "How do I cook rice on the stove?",
            "How much water do I use for rice?",
        ],
        "Simmer rinsed white rice covered, with about 1.5 to 2 parts water, then rest it.",
        "Rinse the rice until the water runs mostly clear to remove excess starch. For "
        "long-grain white rice, use about one and a half cups of water per cup of rice, bring "
        "it to a boil, then cover and simmer on low for about fifteen minutes. Let it stand, "
        "still covered, for ten minutes before fluffing with a fork.",
    ),
    T(
        "onions_tears",
        [
            "Why do onions make you cry?",
            "How can I stop crying when chopping onions?",
        ],
        "Cutting onions releases an irritating gas; a sharp knife and a chilled onion help.",
        "Chopping breaks onion cells, letting enzymes produce a volatile compound called "
        "syn-propanethial-S-oxide. When it reaches your eyes, it irritates them and triggers "
        "tears. A sharp knife crushes fewer cells, chilling the onion slows the reaction, and "
        "cutting near a fan or extractor hood carries the gas away from your face.",
    ),
    T(
        "resting_meat",
        [
            "Why should you rest meat after cooking?",
            "How long should a steak rest?",
        ],
        "Rest meat for a few minutes after cooking so it stays juicier when sliced.",
        "Straight out of the pan, a steak's outer layers are much hotter than its centre. During "
        "a rest, the heat evens out and the inside cooks a little more, while the juices "
        "thicken slightly so less runs out when you cut it. Five minutes suits a steak; a large "
        "roast benefits from fifteen to thirty minutes.",
    ),
    # --- Everyday technology ---------------------------------------------
    T(
        "wifi",
        [
            "How does Wi-Fi work?",
            "What is Wi-Fi?",
            "Explain how wireless internet works.",
        ],
        "Wi-Fi sends data between your devices and a router using radio waves.",
        "Your router connects to the internet through a cable and converts data into radio "
        "signals, usually on the 2.4 or 5 gigahertz bands. Phones and laptops have small radios "
        "that send and receive these signals. Walls, distance and interference from other "
        "devices weaken the signal, which is why speeds drop far from the router.",
    ),
    T(
        "passwords",
        [
            "How do I create a strong password?",
            "What makes a password secure?",
            "Give me tips for a strong password.",
        ],
        "Use long, unique passwords for every account, ideally stored in a password manager.",
        "Length matters more than complexity: a passphrase of four or more random words is both "
        "strong and easy to remember. Never reuse passwords, because one leak can unlock your "
        "other accounts. A password manager can generate and remember unique passwords for you, "
        "and two-factor authentication makes accounts much harder to break into.",
    ),
    T(
        "two_factor_auth",
        [
            "What is two-factor authentication?",
            "Why should I turn on 2FA?",
        ],
        "Two-factor authentication requires a second proof of identity besides your password.",
        "After entering your password, you must also provide something else, such as a code "
        "from an authenticator app, a text message, or a hardware security key. Even if a "
        "criminal steals your password, they cannot log in without that second factor. "
        "Authenticator apps and security keys are safer than text messages, which can be "
        "intercepted.",
    ),
    T(
        "cloud_storage",
        [
            "What is cloud storage?",
            "Where are my files stored when I use the cloud?",
        ],
        "Cloud storage keeps your files on a company's remote servers, accessible over the internet.",
        "When you save a file to a cloud service, it is uploaded to data centres run by the "
        "provider, often copied to several locations for safety. You can then reach it from any "
        "device with an internet connection and share it easily. The trade-off is relying on "
        "the provider's security, so protect the account well.",
    ),
    T(
        "gps",
        [
            "How does GPS work?",
            "How does my phone know where I am?",
            "Explain how GPS finds your location.",
        ],
        "GPS receivers calculate position from timed signals sent by several satellites.",
        "Satellites orbiting about 20,000 kilometres up continuously broadcast their position "
        "and the precise time from onboard atomic clocks. A receiver measures how long signals "
        "from at least four satellites take to arrive, and uses those distances to work out "
        "its location. Phones also use Wi-Fi networks and mobile masts for a faster, rougher fix.",
    ),
    T(
        "ip_address",
        [
            "What is an IP address?",
            "Why does every device online have an IP address?",
        ],
        "An IP address is a numeric label that identifies a device on a network.",
        "Just as letters need a postal address, data sent across the internet needs a "
        "destination, and an IP address tells routers where to deliver it. Older IPv4 addresses "
        "look like 192.168.1.10, but the world ran short of them, so the longer IPv6 format was "
        "introduced. A home router usually shares one public address among all your devices.",
    ),
    T(
        "ram_vs_storage",
        [
            "What is the difference between RAM and storage?",
            "Why does a computer need RAM?",
        ],
        "RAM is fast, temporary working memory; storage keeps files permanently, even when powered off.",
        "RAM holds the programs and data your computer is actively using, so the processor can "
        "reach them very quickly, but its contents vanish when the power goes off. Storage, "
        "such as an SSD or hard drive, is slower but keeps files and apps indefinitely. More "
        "RAM lets you run more programs smoothly at once; more storage holds more files.",
    ),
    T(
        "restarting",
        [
            "Why does restarting a computer fix problems?",
            "Should I restart my phone regularly?",
        ],
        "Restarting clears memory and resets stuck software, fixing many temporary glitches.",
        "Over time, programs can leak memory, get stuck waiting on each other, or leave "
        "hardware in an odd state. A restart shuts everything down and loads it fresh from a "
        "known starting point, and it also finishes installing updates. Restarting now and then "
        "is sensible, but a problem that keeps returning points to a deeper cause.",
    ),
    T(
        "phishing",
        [
            "What is phishing?",
            "How can I spot a phishing email?",
            "What does a phishing scam look like?",
        ],
        "Phishing is a scam that tricks you into revealing passwords or sending money.",
        "Criminals send emails, texts or messages pretending to be a bank, delivery company or "
        "colleague, often creating a sense of urgency. Warning signs include unexpected "
        "requests, slightly wrong sender addresses, and links to odd websites. If in doubt, do "
        "not click; contact the organisation directly using a number or website you know is "
        "genuine.",
    ),
    T(
        "backups",
        [
            "Why should I back up my files?",
            "What is the 3-2-1 backup rule?",
            "How should I back up my computer?",
        ],
        "Back up important data: keep three copies, on two kinds of storage, one offsite.",
        "Drives fail, devices get lost, and ransomware can encrypt everything on a computer. The "
        "3-2-1 rule means keeping three copies of important data, on two different types of "
        "storage, with one copy somewhere else, such as a cloud service. Test your backups now "
        "and then by restoring a file, since an untested backup may not work.",
    ),
    T(
        "browser_cookies",
        [
            "What are browser cookies?",
            "Why do websites ask me to accept cookies?",
        ],
        "Cookies are small files websites store in your browser to remember information about you.",
        "Cookies let a site keep you logged in, remember your shopping basket, or save your "
        "language preference. Third-party cookies, set by advertisers embedded in many sites, "
        "can track your browsing across the web. Privacy laws in places like the European Union "
        "require sites to ask for consent before using non-essential cookies.",
    ),
    T(
        "bluetooth",
        [
            "What is Bluetooth?",
            "How is Bluetooth different from Wi-Fi?",
        ],
        "Bluetooth is a short-range, low-power radio link for connecting nearby devices.",
        "Bluetooth connects gadgets like headphones, keyboards and watches directly to a phone "
        "or computer, usually within about ten metres. It uses the same 2.4 gigahertz band as "
        "some Wi-Fi but is designed for low power and small amounts of data. Wi-Fi offers more "
        "range and speed and links devices to a network and the internet.",
    ),
    # --- Language --------------------------------------------------------
    T(
        "nouns",
        [
            "What is a noun?",
            "Can you give examples of nouns?",
            "Explain what a noun is.",
        ],
        "A noun is a word that names a person, place, thing or idea.",
        "Nouns include people like teacher or Maria, places like kitchen or Paris, things like "
        "bicycle, and abstract ideas like happiness or freedom. Proper nouns name specific "
        "people or places and start with a capital letter. In a sentence, a noun is often the "
        'subject, as in "The dog barked," or the object.',
    ),
    T(
        "palindromes",
        [
            "What is a palindrome?",
            "Give me some examples of palindromes.",
        ],
        "A palindrome reads the same forwards and backwards, like level or racecar.",
        "Palindromes can be single words, such as radar, kayak and noon, or whole phrases if "
        'you ignore spaces and punctuation, like "Never odd or even." Numbers can be '
        "palindromic too, such as 12321. Some dates also read the same both ways when written "
        "as digits, such as 22/02/2022.",
    ),
    T(
        "haiku",
        [
            "What is a haiku?",
            "How do you write a haiku?",
        ],
        "A haiku is a short Japanese poem form, traditionally three lines of 5-7-5 syllables.",
        "In Japanese, haiku are counted in sound units rather than syllables, but English "
        "versions usually follow a five, seven, five syllable pattern. Traditional haiku capture "
        "a single moment in nature and often include a word hinting at the season. Matsuo "
        "Bashō, a seventeenth-century poet, is the form's most famous master.",
    ),
    T(
        "metaphor_simile",
        [
            "What is the difference between a metaphor and a simile?",
            "What is a simile?",
        ],
        "A simile compares using like or as; a metaphor says one thing is another.",
        '"Her smile was like sunshine" is a simile, because the word like makes the comparison '
        'openly. "Her smile was sunshine" is a metaphor, stating the comparison as if it were '
        "literally true. Both help writers describe something vividly by linking it to a "
        "familiar image.",
    ),
    T(
        "its_vs_its",
        [
            "When do I use its or it's?",
            "What's the difference between its and it's?",
        ],
        "It's means it is or it has; its shows possession.",
        'Use it\'s only when you could replace it with "it is" or "it has," as in "It\'s '
        'raining" or "It\'s been a long day." Use its for belonging, as in "The dog wagged '
        'its tail." The confusion arises because most possessives use an apostrophe, but '
        "possessive pronouns such as his, hers and its do not.",
    ),
    T(
        "etymology",
        [
            "What does etymology mean?",
            "Where do English words come from?",
        ],
        "Etymology studies word origins; English draws mostly on Old English, French, Latin and Greek.",
        "English has borrowed heavily from other languages. Its core comes from Old English, a "
        "Germanic language, but huge numbers of words arrived from French after the Norman "
        "Conquest of 1066, and from Latin and Greek through science and scholarship. The word "
        "salary, for example, comes from the Latin salarium, which is linked to salt.",
    ),
    T(
        "synonyms_antonyms",
        [
            "What is the difference between a synonym and an antonym?",
            "What is a synonym?",
        ],
        "Synonyms have similar meanings; antonyms have opposite meanings.",
        "Big and large are synonyms, while big and small are antonyms. Few synonyms are perfect "
        "swaps, because words carry different shades of meaning and tone: slim and skinny both "
        "mean thin, but one sounds more flattering. A thesaurus lists both, helping writers "
        "avoid repetition and choose the most precise word.",
    ),
    # --- Mathematics -----------------------------------------------------
    T(
        "prime_numbers",
        [
            "What is a prime number?",
            "Is 1 a prime number?",
            "Give me some examples of prime numbers.",
        ],
        "A prime has exactly two divisors, 1 and itself, so 1 is not prime.",
        "The first primes are 2, 3, 5, 7, 11, 13 and 17. The number 2 is the only even prime, "
        "since every other even number divides by 2. Every whole number above 1 is either prime "
        "or a unique product of primes, which is why they are called the building blocks of "
        "arithmetic. There are infinitely many of them.",
    ),
    T(
        "pythagorean_theorem",
        [
            "What is the Pythagorean theorem?",
            "How do I find the long side of a right triangle?",
            "Can you explain a squared plus b squared equals c squared?",
        ],
        "In a right triangle, a squared plus b squared equals c squared.",
        "The theorem says the square of the hypotenuse, the side opposite the right angle, "
        "equals the sum of the squares of the other two sides. For example, if the short sides "
        "are 3 and 4, then 9 plus 16 is 25, so the hypotenuse is 5. Builders use this to check "
        "that corners are square.",
    ),
    T(
        "pi",
        [
            "What is pi?",
            "Why is pi important in maths?",
            "Explain what the number pi is.",
        ],
        "Pi is the ratio of a circle's circumference to its diameter, about 3.14159.",
        "For any circle, whatever its size, the circumference divided by the diameter is the "
        "same number, pi. It is irrational, so its decimal digits go on forever without "
        "repeating. Pi appears in formulas for circles and spheres, such as area equals pi "
        "times the radius squared, and throughout physics and engineering.",
    ),
    T(
        "percentages",
        [
            "How do I calculate a percentage?",
            "How do I work out 15% of a number?",
        ],
        "Percent means per hundred: multiply by the percentage, then divide by 100.",
        "To find 15 percent of 80, multiply 80 by 15 and divide by 100, giving 12. In your "
        "head, find 10 percent by moving the decimal point, then adjust: 10 percent of 80 is 8, "
        "half that is 4, together 12. To show 12 out of 80 as a percentage, "
        "divide 12 by 80 and multiply by 100.",
    ),
    T(
        "adding_fractions",
        [
            "How do you add fractions?",
            "How do I add fractions with different denominators?",
            "Show me how to add one half and one third.",
        ],
        "Give the fractions a common denominator, then add the numerators.",
        "To add one half and one third, find a common denominator, such as 6. One half becomes "
        "three sixths and one third becomes two sixths. Adding the numerators gives five "
        "sixths, while the denominator stays the same. If the fractions already share a "
        "denominator, just add the top numbers, then simplify if possible.",
    ),
    T(
        "mean_median",
        [
            "What is the difference between mean and median?",
            "When should I use the median instead of the average?",
            "How do I find the median of a set of numbers?",
        ],
        "The mean is the arithmetic average; the median is the middle value when sorted.",
        "To find the mean, add all the values and divide by how many there are. The median is "
        "the middle number once the values are in order, or the average of the two middle ones. "
        "The median resists extreme values: one billionaire moving into a town raises the mean "
        "income dramatically but barely changes the median.",
    ),
    T(
        "negative_times_negative",
        [
            "Why is a negative times a negative positive?",
            "Why does minus times minus equal plus?",
        ],
        "Multiplying by a negative reverses direction, so reversing twice gives a positive.",
        "Multiplying by minus one flips a number to the other side of zero. "
        "Flipping 3 gives minus 3, and flipping minus 3 brings you back to 3. A pattern shows "
        "it too: minus 3 times 2, 1 and 0 gives minus 6, minus 3 and 0, rising by 3 each step, "
        "so minus 3 times minus 1 is 3.",
    ),
    T(
        "divide_by_zero",
        [
            "Why can't you divide by zero?",
            "What is 10 divided by 0?",
            "Explain why division by zero is undefined.",
        ],
        "Division by zero is undefined because no number gives a consistent answer.",
        "Division asks which number, times the divisor, gives the original. For 10 divided by "
        "0, you would need a number that makes 10 when multiplied by 0, but anything times 0 is "
        "0, so no answer exists. For 0 divided by 0, every number works, so there is no single "
        "answer either. Mathematicians therefore leave it undefined.",
    ),
    T(
        "fibonacci",
        [
            "What is the Fibonacci sequence?",
            "How does the Fibonacci sequence work?",
            "Explain the Fibonacci numbers.",
        ],
        "Each Fibonacci number is the sum of the two before it.",
        "The sequence runs 0, 1, 1, 2, 3, 5, 8, 13, 21 and so on. It is named after Leonardo of "
        "Pisa, known as Fibonacci, who introduced it to Europe in 1202, though Indian "
        "mathematicians described it centuries earlier. Fibonacci numbers often appear in "
        "nature, such as the counts of spirals in sunflower heads and pine cones.",
    ),
    T(
        "gamblers_fallacy",
        [
            "If a coin lands heads five times, is tails more likely next?",
            "What is the gambler's fallacy?",
            "Are coin flips affected by previous results?",
        ],
        "Past coin flips do not affect the next one; each is still fifty-fifty.",
        "A fair coin has no memory, so every toss has an equal chance of heads or tails "
        "regardless of what came before. Believing a streak makes the opposite result due is "
        "called the gambler's fallacy. Over thousands of flips the proportions do even out, but "
        "only because streaks get diluted, not because they are corrected.",
    ),
]


# ---------------------------------------------------------------------------
# Eval topics: different subjects from every train topic (not rephrasings).
# ---------------------------------------------------------------------------
EVAL_TOPICS: list[Topic] = [
    T(
        "yawning",
        ["Why do we yawn?", "What is the purpose of yawning?"],
        "Yawning's purpose is uncertain; a leading idea is that it helps cool the brain.",
        "People yawn when tired, bored or just waking up, and even unborn babies yawn in the "
        "womb. One leading theory is that the deep breath and jaw stretch help cool the brain. "
        "Yawns are also contagious: seeing, hearing or even reading about yawning can trigger "
        "one, possibly because of social bonding.",
    ),
    T(
        "solar_eclipse",
        ["What is a solar eclipse?", "How does a solar eclipse happen?"],
        "A solar eclipse happens when the Moon passes between Earth and the Sun.",
        "During a total solar eclipse, the Moon covers the Sun's bright disc completely, and the "
        "sky darkens enough to reveal the Sun's glowing outer atmosphere, the corona. This works "
        "because the Sun is about 400 times wider than the Moon but also about 400 times "
        "farther away. Never look at the Sun without certified eclipse glasses.",
    ),
    T(
        "airplane_lift",
        ["How do airplanes stay in the air?", "What keeps a plane flying?"],
        "Wings push air downward, creating lift that balances the plane's weight.",
        "An aircraft's wings are shaped and angled so that the air flowing past them is pushed "
        "downward, and the pressure above the wing drops below the pressure underneath. This "
        "produces an upward force called lift. Engines provide thrust to overcome drag and keep "
        "the plane moving fast enough for the wings to hold it up.",
    ),
    T(
        "inflation",
        ["What is inflation in economics?", "Why do prices go up over time?"],
        "Inflation is a general rise in prices, which reduces what money can buy.",
        "With 3 percent inflation, a basket of goods costing 100 pounds one year costs about "
        "103 the next. Inflation can rise when demand outpaces supply, when costs such as "
        "energy jump, or when too much money circulates. Central banks usually aim for low, "
        "steady inflation of around 2 percent, raising interest rates to cool it.",
    ),
    T(
        "ice_floats",
        ["Why does ice float on water?", "Why is ice less dense than liquid water?"],
        "Ice floats because freezing water forms an open crystal structure, less dense than liquid.",
        "Most substances are denser as solids, but water is unusual. As it freezes, hydrogen "
        "bonds lock the molecules into a hexagonal lattice with more space between them, making "
        "ice about 9 percent less dense than liquid water. This matters for life: lakes freeze "
        "from the top down, and the ice insulates the water beneath.",
    ),
    T(
        "refrigerator",
        ["How does a refrigerator keep food cold?"],
        "A fridge pumps heat out using a refrigerant that evaporates inside and condenses outside.",
        "A liquid refrigerant flows through coils inside the fridge, where it evaporates and "
        "absorbs heat from the food compartment. A compressor then squeezes the vapour, making "
        "it hot, and pushes it to coils on the back or bottom, where it releases heat into the "
        "kitchen and condenses back into liquid. Then the cycle repeats.",
    ),
    T(
        "great_wall",
        ["What is the Great Wall of China?", "When was the Great Wall of China built?"],
        "The Great Wall is a chain of ancient Chinese defences, built over many centuries.",
        "Successive dynasties built and rebuilt walls across northern China for about two "
        "thousand years to keep out raiders from the north. Most of what survives today dates "
        "from the Ming dynasty. Despite the popular myth, the wall is far too narrow to see "
        "with the naked eye from the Moon, and is very hard to spot even from low orbit.",
    ),
    T(
        "microwave_oven",
        ["How does a microwave oven heat food?", "Explain how a microwave oven works."],
        "Microwaves make water molecules in food jostle rapidly, which generates heat.",
        "A microwave oven produces radio waves at about 2.45 gigahertz. These make water "
        "molecules, which have a positive and a negative end, twist back and forth constantly, "
        "and the jostling heats the food. The waves form hot and cold spots inside the oven, "
        "which is why turntables and stirring help food heat evenly.",
    ),
    T(
        "leap_years",
        ["Why do we have leap years?", "Why does February sometimes have 29 days?"],
        "Leap years add a day because Earth's orbit takes about 365 and a quarter days.",
        "Without the extra 29 February, the calendar would slip about six hours a year against "
        "the seasons. A year is a leap year if it divides by 4, but century years must also "
        "divide by 400, because the true year is slightly shorter than 365.25 days. So 2000 was "
        "a leap year, but 1900 was not.",
    ),
    T(
        "hiccups",
        ["What causes hiccups?"],
        "Hiccups are sudden spasms of the diaphragm, followed by the vocal cords snapping shut.",
        "The diaphragm, the muscle beneath your lungs, contracts involuntarily and pulls in a "
        "quick breath, which is cut off by your vocal cords closing, making the hic sound. "
        "Triggers include eating quickly, fizzy drinks, excitement and sudden temperature "
        "changes. Most bouts stop within minutes; hiccups lasting over two days are worth "
        "seeing a doctor about.",
    ),
    T(
        "vinaigrette",
        ["How do I make a simple vinaigrette?", "What is a good ratio for salad dressing?"],
        "Whisk about three parts oil to one part vinegar, with salt and mustard.",
        "Start with vinegar or lemon juice, a pinch of salt, and a little Dijon mustard, which "
        "helps the oil and vinegar stay mixed. Slowly whisk in the oil, or shake everything in "
        "a sealed jar. Taste it on a salad leaf and adjust with more acid, salt or a touch of "
        "honey.",
    ),
    T(
        "roman_numerals",
        ["How do Roman numerals work?", "How do you read Roman numerals?"],
        "Roman numerals add letter values, except a smaller letter before a larger one is subtracted.",
        "The main symbols are I for 1, V for 5, X for 10, L for 50, C for 100, D for 500 and M "
        "for 1,000. Normally you add them, so VIII is 8. A smaller symbol before a larger one is "
        "subtracted, so IV is 4 and XC is 90. That makes MCMXC equal to 1990.",
    ),
    T(
        "submarines",
        ["How do submarines dive and surface?"],
        "Submarines flood ballast tanks with water to dive and blow them out to surface.",
        "A submarine has large ballast tanks. To dive, it opens vents and lets seawater in, "
        "making it heavier than the water it displaces. To surface, compressed air is blown "
        "into the tanks, forcing the water out so the vessel becomes buoyant again. Small fins "
        "called hydroplanes help steer it up or down while it moves.",
    ),
    T(
        "penguins",
        ["How do penguins stay warm?", "How do penguins survive the Antarctic cold?"],
        "Penguins stay warm with dense feathers, a layer of fat, and huddling together.",
        "Penguins have tightly packed, overlapping feathers with downy insulation beneath, "
        "coated in oil that keeps water out. A thick layer of blubber adds more insulation. "
        "Emperor penguins also huddle in large groups through the Antarctic winter, taking "
        "turns on the windy outer edge, and special blood vessels in their feet limit heat loss.",
    ),
    T(
        "compound_interest",
        ["What is compound interest?", "Why is compound interest so powerful?"],
        "Compound interest is interest earned on both your savings and previously earned interest.",
        "If you invest 1,000 pounds at 5 percent a year, you earn 50 in the first year. In the "
        "second year you earn 5 percent on 1,050, which is 52.50, and the growth keeps "
        "accelerating. Over decades this snowball effect is dramatic, which is why saving early "
        "helps, and why unpaid debt can grow quickly too.",
    ),
    T(
        "spreadsheets",
        ["What is a spreadsheet used for?"],
        "A spreadsheet organises data in rows and columns and calculates with formulas.",
        "Programs like Excel, Google Sheets and LibreOffice Calc let you enter numbers and text "
        "into a grid of cells, each named by a column letter and row number, such as B3. "
        "Formulas can total a column or average values, and update automatically when the data "
        "changes. People use them for budgets, schedules, lists and simple data analysis.",
    ),
    T(
        "olympics",
        ["Where did the Olympic Games come from?", "When did the modern Olympics start?"],
        "The Olympics began in ancient Greece; the modern Games started in Athens in 1896.",
        "The ancient Games were held at Olympia in honour of Zeus, traditionally from 776 BC, "
        "and continued for over a thousand years. Events included running, wrestling, chariot "
        "racing and the pentathlon. The French educator Pierre de Coubertin revived the idea, "
        "and the first modern Olympic Games took place in Athens in 1896.",
    ),
    T(
        "allergies",
        ["What is an allergy?", "Why do some people have allergies?"],
        "An allergy is the immune system overreacting to a normally harmless substance.",
        "In an allergic person, the immune system treats things like pollen, dust mites, "
        "peanuts or pet dander as threats and makes antibodies against them. On later exposure, "
        "cells release histamine and other chemicals, causing sneezing, itching, rashes or "
        "swelling. A severe reaction, called anaphylaxis, is an emergency that needs adrenaline "
        "and urgent medical help.",
    ),
    T(
        "alliteration",
        ["What is alliteration?", "Can you give an example of alliteration?"],
        "Alliteration is repeating the same starting sound in nearby words.",
        'A classic example is the tongue twister "Peter Piper picked a peck of pickled '
        'peppers." Alliteration makes phrases catchy and memorable, which is why it shows up in '
        "poetry, slogans, headlines and brand names such as Coca-Cola and PayPal. It depends on "
        'sound rather than spelling, so "kind cat" counts too.',
    ),
    T(
        "qr_codes",
        ["How do QR codes work?", "What is a QR code?"],
        "A QR code stores data in a square pattern of black and white modules.",
        "QR stands for quick response. A phone camera reads the grid of squares, using the three "
        "large corner squares to find the code's position and angle. The pattern encodes text, "
        "often a web address, with built-in error correction, so the code can still be read "
        "even if part of it is dirty or damaged.",
    ),
    T(
        "northern_lights",
        ["What causes the Northern Lights?", "What are the Northern Lights?"],
        "Auroras glow when charged particles from the Sun hit gases in the upper atmosphere.",
        "The Sun constantly sends out charged particles in the solar wind. Earth's magnetic "
        "field steers many of them toward the polar regions, where they strike oxygen and "
        "nitrogen high above the ground and make them glow, mostly green but sometimes red or "
        "purple. Good places to see them include Norway, Iceland, Finland, Canada and Alaska.",
    ),
    T(
        "making_tea",
        ["How do I make a good cup of tea?"],
        "Use freshly boiled water, steep for the right time, and avoid over-brewing.",
        "For black tea, pour water just off the boil over the leaves or bag and steep for three "
        "to five minutes, then add milk if you like. Green tea prefers cooler water, around 70 "
        "to 80 degrees Celsius, and a shorter steep of two or three minutes; otherwise it turns "
        "bitter.",
    ),
    T(
        "rosetta_stone",
        ["What is the Rosetta Stone?", "Why is the Rosetta Stone important?"],
        "The Rosetta Stone's matching texts unlocked the reading of Egyptian hieroglyphs.",
        "Found in 1799 near the Egyptian town of Rosetta, the stone carries the same decree from "
        "196 BC in three scripts: hieroglyphic, Demotic and ancient Greek. Because scholars "
        "could read the Greek, they could compare it with the others, and Jean-François "
        "Champollion announced his decipherment in 1822. It is now in the British Museum.",
    ),
    T(
        "camels",
        ["What do camels store in their humps?", "How do camels survive in the desert?"],
        "Camel humps store fat, not water, and camels conserve water extremely well.",
        "A camel's hump holds fat that it can break down for energy when food is scarce. Camels "
        "go a long time without drinking because they lose very little water: their kidneys "
        "make concentrated urine, and their body temperature can rise during the day before "
        "they sweat. When they do drink, they can gulp around 100 litres in minutes.",
    ),
    T(
        "square_roots",
        ["What is a square root?", "What does square root mean?"],
        "A square root is a number that, multiplied by itself, gives the original number.",
        "The square root of 49 is 7, because 7 times 7 is 49. Every positive number has two "
        "square roots, one positive and one negative, but the √ symbol means the positive one. "
        "Many square roots, like that of 2, are irrational, so calculators give decimal "
        "approximations, in this case about 1.414.",
    ),
]


# ---------------------------------------------------------------------------
# Row building and validation
# ---------------------------------------------------------------------------
def _words(text: str) -> int:
    return len(text.split())


def validate(train: list[Topic], eval_: list[Topic]) -> None:
    train_keys = [t.key for t in train]
    eval_keys = [t.key for t in eval_]
    assert len(set(train_keys)) == len(train_keys), "duplicate train topic key"
    assert len(set(eval_keys)) == len(eval_keys), "duplicate eval topic key"
    assert not set(train_keys) & set(eval_keys), "train/eval topics overlap"

    seen_questions: set[str] = set()
    seen_summaries: set[str] = set()
    for topic in train + eval_:
        assert topic.questions, f"{topic.key}: no questions"
        for q in topic.questions:
            norm = " ".join(q.lower().split())
            assert norm not in seen_questions, f"duplicate question: {q!r}"
            seen_questions.add(norm)
            assert q.strip() == q and q[-1] in "?.", f"{topic.key}: bad question {q!r}"
            assert _words(q) <= MAX_QUESTION_WORDS, f"{topic.key}: question too long: {q!r}"
        s, d = topic.summary, topic.detail
        assert s not in seen_summaries, f"{topic.key}: duplicate summary"
        seen_summaries.add(s)
        for text in (s, d):
            assert "\n" not in text and text.strip() == text, f"{topic.key}: whitespace"
            assert "  " not in text, f"{topic.key}: double space"
            assert text[-1] in '.!?"', f"{topic.key}: missing final punctuation"
        assert not s.startswith(TLDR_PREFIX) and "TL;DR" not in d, topic.key
        assert _words(s) <= MAX_SUMMARY_WORDS, f"{topic.key}: summary {_words(s)} words"
        assert MIN_DETAIL_WORDS <= _words(d) <= MAX_DETAIL_WORDS, f"{topic.key}: detail {_words(d)} words"


def make_row(question: str, summary: str, detail: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": f"{TLDR_PREFIX}{summary}\n\n{detail}"}],
        # Same words, summary last: the pair differs only in whether the answer leads with it.
        "rejected": [{"role": "assistant", "content": f"{detail}\n\n{TLDR_PREFIX}{summary}"}],
    }


def build_rows(topics: list[Topic], max_questions: int | None = None) -> list[dict]:
    rows = []
    for topic in topics:
        questions = topic.questions if max_questions is None else topic.questions[:max_questions]
        for q in questions:
            rows.append(make_row(q, topic.summary, topic.detail))
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    validate(TRAIN_TOPICS, EVAL_TOPICS)

    train_rows = build_rows(TRAIN_TOPICS)
    eval_rows = build_rows(EVAL_TOPICS, max_questions=2)
    random.Random(0).shuffle(train_rows)
    random.Random(0).shuffle(eval_rows)

    write_jsonl(HERE / "train.jsonl", train_rows)
    write_jsonl(HERE / "eval.jsonl", eval_rows)

    print(f"train: {len(TRAIN_TOPICS)} topics, {len(train_rows)} rows -> {HERE / 'train.jsonl'}")
    print(f"eval:  {len(EVAL_TOPICS)} topics, {len(eval_rows)} rows -> {HERE / 'eval.jsonl'}")


if __name__ == "__main__":
    main()
